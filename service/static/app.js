// The page: sends the text to POST /parse, in the language chosen among those GET /model lists,
// and draws each sentence's tree (from its PTB string)
// with the per-token syntactic distances as a bar chart under the words.  Trees are SVGs with a
// viewBox, scaled to fit their box (zoom buttons and + / - / 0 keys magnify them, scrolling
// sideways, with the root brought back into view).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const FONT_SIZE = 15;
// style.css's --font: Latin faces first, then CJK ones, so that Chinese words are measured as drawn
const FONT = `${FONT_SIZE}px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Noto Sans CJK SC", `
  + `"Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif`;
// what the text box holds when a language is chosen, unless the user has typed something of their own
const SAMPLES = {
  en: "The cat sat on the mat. A dog chased the cat into the garden.",
  zh: "北京是中国的首都。",
  es: "El gato duerme en la casa. Un perro persigue al gato.",
  pt: "O gato dorme na casa. Um cão persegue o gato.",
  nl: "De kat slaapt in het huis. Een hond jaagt op de kat.",
};
const PUNCTUATION = /^[\p{P}\p{S}]+$/u;
const PTB_UNESCAPES = { "-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}" };
const ZOOM_STEP = 1.25;
const MAX_ZOOM = 3;
// below this share of the natural size, leaf words are drawn slanted in narrow columns
const COMPACT_BELOW = 0.85;
// left of the first word's column, where there are bars: the distance axis and its tick labels
const AXIS_ROOM = 34;

const elements = {
  form: document.getElementById("parse-form"),
  text: document.getElementById("text"),
  language: document.getElementById("language"),
  terms: document.getElementById("language-terms"),
  layer: document.getElementById("layer"),
  layerHint: document.getElementById("layer-hint"),
  decoder: document.getElementById("decoder"),
  gate: document.getElementById("gate"),
  prior: document.getElementById("prior"),
  allLayers: document.getElementById("all-layers"),
  punctuationFirst: document.getElementById("punctuation-first"),
  button: document.getElementById("parse-button"),
  error: document.getElementById("error"),
  modelError: document.getElementById("model-error"),
  results: document.getElementById("results"),
  modelInfo: document.getElementById("model-info"),
  status: document.getElementById("status"),
};

const state = {
  layers: [], // [{index, devF1 (number|null), isDefault}] from GET /model
  results: [], // the results on screen, for the downloads
  defaultDecoder: null,
  defaultGate: null,
  defaultPrior: null,
  defaultPunctuationFirst: false, // until GET /model says the model's own
  languages: [], // [{language, language_name, model, terms, default}] from GET /model
  model: "loading", // "loading" | "ready" | "failed" | "unreachable", from GET /ready
};

function plural(count, word, pluralWord = `${word}s`) {
  return `${count.toLocaleString("en")} ${count === 1 ? word : pluralWord}`;
}

function announce(message) {
  // a polite live region: screen readers hear "Copied", "Parsed 2 sentences", ...
  elements.status.textContent = "";
  window.setTimeout(() => { elements.status.textContent = message; }, 30);
}

// --- talking to the API ---------------------------------------------------------------

function capitalised(message) {
  // the API counts sentences and tokens from 1, as the cards do; only the first letter changes
  return message.charAt(0).toUpperCase() + message.slice(1);
}

async function apiError(response) {
  // every error of the API is {"error": {"code", "message", ...}}; anything else is shown raw
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return capitalised(body.error.message);
    if (body && typeof body.detail === "string") return capitalised(body.detail);
  } catch (ignored) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

class RequestFailed extends Error {}

async function postParse(request) {
  let response;
  try {
    response = await fetch("/parse", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
  } catch (error) {
    throw new RequestFailed(`The service cannot be reached (${error.message}); is it running?`);
  }
  if (!response.ok) throw new RequestFailed(await apiError(response));
  return response.json();
}

function layerFacts(card) {
  // GET /model gives "layers": [{index, dev_f1, default}]; older services give only
  // default_layer and dev_f1_per_layer (top level or in the metadata): use what is there.
  const metadata = card.metadata || {};
  const defaultLayer = Number.isInteger(card.default_layer) ? card.default_layer : metadata.default_layer;
  const perLayer = [card.dev_f1_per_layer, metadata.dev_f1_per_layer].find(Array.isArray) || [];
  const number = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
  if (Array.isArray(card.layers) && card.layers.length) {
    const anyMarked = card.layers.some((layer) => layer.default === true);
    return card.layers.map((layer) => ({
      index: layer.index,
      devF1: number(layer.dev_f1) ?? number(perLayer[layer.index]),
      isDefault: anyMarked ? layer.default === true : layer.index === defaultLayer,
    }));
  }
  const count = Number.isInteger(card.n_layers) ? card.n_layers : perLayer.length;
  return Array.from({ length: count }, (_, index) => ({
    index, devF1: number(perLayer[index]), isDefault: index === defaultLayer,
  }));
}

function layerLabel(layer) {
  const parts = [`layer ${layer.index}`];
  if (layer.devF1 !== null) parts.push(`dev F1 ${layer.devF1.toFixed(1)}`);
  return parts.join(" · ") + (layer.isDefault ? " (default)" : "");
}

function fillLayerChoices(card) {
  state.layers = layerFacts(card);
  if (!state.layers.length) return;
  elements.layer.replaceChildren();
  for (const layer of state.layers) {
    const option = document.createElement("option");
    option.value = String(layer.index);
    option.textContent = layerLabel(layer);
    option.selected = layer.isDefault;
    elements.layer.appendChild(option);
  }
  const scored = state.layers.some((layer) => layer.devF1 !== null);
  const treebank = (card.language ?? "en") === "en" ? "the Penn Treebank" : `the ${card.language_name} treebank's`;
  elements.layerHint.textContent = scored
    ? `dev F1: unlabelled sentence F1 on ${treebank} development set, higher is better; `
      + "the default is the model's best layer."
    : "The model card gives no per-layer F1; the default is the layer the model was released with.";
}

function markDefault(select, value) {
  for (const option of select.options) {
    const isDefault = option.value === value;
    option.textContent = option.dataset.label + (isDefault ? " (default)" : "");
    option.selected = isDefault;
  }
}

function fillDecoderChoices(card) {
  state.defaultDecoder = card.default_decoder ?? null;
  markDefault(elements.decoder, card.default_decoder);
  state.defaultGate = card.default_gate ?? null;
  markDefault(elements.gate, card.default_gate);
}

function fillPrior(card) {
  state.defaultPrior = typeof card.default_right_branching_bias === "number" ? card.default_right_branching_bias : null;
  if (state.defaultPrior !== null) elements.prior.value = String(state.defaultPrior);
  // the box shows the model's own setting; a request carries it only when the box says otherwise
  state.defaultPunctuationFirst = card.default_punctuation_first === true;
  elements.punctuationFirst.checked = state.defaultPunctuationFirst;
}

function setModelState(model, info, problem = null) {
  // Parse is offered only while the model can answer: a model that failed to load is an error
  // in plain sight, not a footnote under a button that can only fail
  state.model = model;
  document.body.dataset.model = model;
  elements.modelInfo.textContent = info;
  elements.button.disabled = model !== "ready";
  elements.button.title = model === "ready" ? "" : info;
  elements.modelError.hidden = !problem;
  elements.modelError.textContent = problem || "";
}

function waitForModel(readiness) {
  if (readiness.status === "failed") {
    setModelState("failed", "No model: it could not be loaded.",
      `The model could not be loaded, so nothing can be parsed: ${(readiness.error || "no reason given").replace(/\.$/, "")}. `
      + "The service's log says more; fix the checkpoint and restart it.");
    return;
  }
  const draining = readiness.status === "draining";
  setModelState("loading", draining ? "The service is shutting down…" : "The model is loading…");
  window.setTimeout(showModel, 2000);
}

async function showModel() {
  let response;
  try {
    response = await fetch("/ready");
  } catch (error) {
    setModelState("unreachable", "The service cannot be reached.",
      "The service cannot be reached; is it running? The page tries again every few seconds.");
    window.setTimeout(showModel, 5000);
    return;
  }
  const readiness = await response.json().catch(() => ({}));
  if (response.status !== 200) {
    waitForModel(readiness);
    return;
  }
  const card = await (await fetch("/model")).json();
  setModelState("ready", "");
  fillLanguageChoices(card);
  showCard(card);
}

function showCard(card) {
  // the chosen language's model: its facts, layers, decoder, prior and the terms of its training data
  const facts = [`<strong>${escapeHtml(card.name)}</strong> (version ${escapeHtml(card.version)})`];
  if (card.language_name) facts.push(escapeHtml(card.language_name));
  if (Number.isInteger(card.n_layers)) facts.push(plural(card.n_layers, "layer"));
  if (Number.isInteger(card.vocabulary_size)) facts.push(`${plural(card.vocabulary_size, "word")} in the vocabulary`);
  if (typeof card.dev_perplexity === "number") facts.push(`dev perplexity ${card.dev_perplexity.toFixed(1)}`);
  if (typeof card.dev_f1 === "number") facts.push(`dev F1 ${card.dev_f1.toFixed(1)}`);
  elements.modelInfo.innerHTML = facts.join(" · ");
  elements.terms.hidden = !card.terms;
  elements.terms.textContent = card.terms ? `${card.language_name || card.language} model: ${card.terms}.` : "";
  fillLayerChoices(card);
  fillDecoderChoices(card);
  fillPrior(card);
}

function languageLabel(entry) {
  // a model with terms beyond its card (the Chinese one: non-commercial) says so where it is chosen
  const restricted = /non-commercial/i.test(entry.terms || "") ? " (non-commercial)" : "";
  return `${entry.language_name} (${entry.language})${restricted}`;
}

function fillLanguageChoices(card) {
  // services from before languages give no list: the selector keeps "model default" and sends nothing
  state.languages = Array.isArray(card.languages) ? card.languages : [];
  if (!state.languages.length) return;
  elements.language.replaceChildren();
  for (const entry of state.languages) {
    const option = document.createElement("option");
    option.value = entry.language;
    option.textContent = languageLabel(entry);
    option.title = entry.terms || "";
    option.selected = entry.language === card.language;
    elements.language.appendChild(option);
  }
  elements.language.dataset.previous = elements.language.value;
}

async function chooseLanguage() {
  const language = elements.language.value;
  const previous = elements.language.dataset.previous;
  elements.language.dataset.previous = language;
  // the sample of the language left behind is replaced by the new one's; the user's own text stays
  if (elements.text.value.trim() === (SAMPLES[previous] || "") && SAMPLES[language]) elements.text.value = SAMPLES[language];
  showError(null);
  try {
    const response = await fetch(`/model?language=${encodeURIComponent(language)}`);
    if (!response.ok) throw new RequestFailed(await apiError(response));
    showCard(await response.json());
  } catch (error) {
    showError(error instanceof RequestFailed ? error.message : `The model card could not be read: ${error.message}`);
  }
}

function buildRequest(text) {
  const request = { text };
  if (elements.language.value !== "") request.language = elements.language.value;
  if (elements.layer.value !== "") request.layer = Number(elements.layer.value);
  // the decoder is sent only when it is not the model's own (unknown until /model answers)
  if (elements.decoder.value !== state.defaultDecoder) request.decoder = elements.decoder.value;
  if (elements.gate.value !== state.defaultGate) request.gate = elements.gate.value;
  // like the decoder: sent only when it differs from the model's own; an empty box is the default
  const prior = elements.prior.value.trim() === "" ? null : Number(elements.prior.value);
  if (prior !== null && Number.isFinite(prior) && prior !== state.defaultPrior) request.right_branching_bias = prior;
  if (elements.punctuationFirst.checked !== state.defaultPunctuationFirst) {
    request.punctuation_first = elements.punctuationFirst.checked;
  }
  if (elements.allLayers.checked) request.all_layers = true;
  return request;
}

async function addLayerTrees(request, results) {
  // Services that answer all_layers with distances only: ask for each layer's trees
  // (the same text splits the same way, so result i is the same sentence in every answer).
  if (results.every((result) => Array.isArray(result.layer_trees))) return;
  const layers = state.layers.length ? state.layers.map((layer) => layer.index)
    : (results[0].layer_distances || []).map((_, index) => index);
  if (!layers.length) return; // nothing says how many layers there are: the cards show the one tree
  const answers = await Promise.all(layers.map((layer) => postParse({ ...request, layer, all_layers: false })));
  results.forEach((result, index) => {
    result.layer_trees = answers.map((answer) => answer.results[index].tree);
  });
}

async function parseText(event) {
  event.preventDefault();
  if (state.model !== "ready") return; // Ctrl+Enter submits even while the button is disabled
  const text = elements.text.value;
  if (!text.trim()) {
    showError("Type a sentence first.");
    return;
  }
  const request = buildRequest(text);
  elements.button.disabled = true;
  elements.button.textContent = "Parsing…";
  elements.results.setAttribute("aria-busy", "true");
  showError(null);
  try {
    const body = await postParse(request);
    if (request.all_layers) await addLayerTrees(request, body.results);
    renderResults(text, body.results, Boolean(request.all_layers));
    announce(`Parsed ${plural(body.results.length, "sentence")}.`);
  } catch (error) {
    showError(error instanceof RequestFailed ? error.message : `The page failed: ${error.message}`);
  } finally {
    elements.button.disabled = state.model !== "ready";
    elements.button.textContent = "Parse";
    elements.results.removeAttribute("aria-busy");
  }
}

function showError(message) {
  elements.error.hidden = !message;
  elements.error.textContent = message ? message[0].toUpperCase() + message.slice(1) : "";
  if (message) {
    // results of an earlier text would read as the answer to this one
    elements.results.replaceChildren();
    state.results = [];
  }
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

// --- copy and download ------------------------------------------------------------------

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (ignored) { /* permission refused: try the old way */ }
  }
  // plain http on another host has no Clipboard API: select a hidden text box and copy
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch (ignored) { /* not supported */ }
  area.remove();
  return copied;
}

function copyButton(label, describe, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small copy";
  button.textContent = label;
  button.setAttribute("aria-label", describe);
  button.addEventListener("click", async () => {
    const copied = await copyText(text());
    button.textContent = copied ? "Copied" : "Copy failed";
    announce(copied ? "Copied to the clipboard." : "The browser refused to copy; select the text instead.");
    window.setTimeout(() => { button.textContent = label; }, 1600);
  });
  return button;
}

function download(filename, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function downloadBar(results) {
  const bar = document.createElement("div");
  bar.className = "results-bar";
  const tokens = results.reduce((sum, result) => sum + result.tokens.length, 0);
  const summary = document.createElement("p");
  summary.className = "summary";
  summary.textContent = `${plural(results.length, "sentence")} · ${plural(tokens, "token")}`;
  const mrg = document.createElement("button");
  mrg.type = "button";
  mrg.className = "small";
  mrg.id = "download-mrg";
  mrg.textContent = "Download trees (.mrg)";
  mrg.title = "One bracketed (PTB) tree per line, in the order of the sentences";
  mrg.addEventListener("click", () => download("trees.mrg", state.results.map((result) => result.tree).join("\n") + "\n",
    "text/plain;charset=utf-8"));
  const jsonl = document.createElement("button");
  jsonl.type = "button";
  jsonl.className = "small";
  jsonl.id = "download-jsonl";
  jsonl.textContent = "Download results (.jsonl)";
  jsonl.title = "One JSON record per sentence, as the API returned it";
  jsonl.addEventListener("click", () => download("parses.jsonl",
    state.results.map((result) => JSON.stringify(result)).join("\n") + "\n", "application/x-ndjson"));
  const copyAll = copyButton("Copy all trees", "Copy every sentence's bracketed tree",
    () => state.results.map((result) => result.tree).join("\n"));
  bar.append(summary, copyAll, mrg, jsonl);
  return bar;
}

// --- results --------------------------------------------------------------------------

function renderResults(text, results, compareLayers) {
  state.results = results;
  elements.results.replaceChildren(downloadBar(results));
  results.forEach((result, index) => elements.results.appendChild(sentenceCard(text, result, index, compareLayers)));
}

function sentenceText(text, result) {
  if (!Array.isArray(result.offsets) || !result.offsets.length) return result.tokens.join(" ");
  return text.slice(result.offsets[0][0], result.offsets[result.offsets.length - 1][1]);
}

function statsLine(result) {
  const stats = document.createElement("div");
  stats.className = "stats";
  const perplexity = typeof result.perplexity === "number" ? result.perplexity.toFixed(1) : "n/a";
  stats.innerHTML = `perplexity <b class="perplexity">${perplexity}</b> · `
    + `<span class="token-count">${plural(result.tokens.length, "token")}</span> · layer ${result.layer}`;
  if (typeof result.unk_share === "number") {
    const unknown = document.createElement("span");
    unknown.className = "unk-share";
    unknown.title = "Share of the words the model read that are not in its vocabulary (<unk>)";
    unknown.innerHTML = ` · unknown words <b>${Math.round(result.unk_share * 100)}%</b>`;
    if (result.unk_share >= 0.5) unknown.classList.add("high");
    stats.appendChild(unknown);
  }
  return stats;
}

function warningList(result) {
  if (!Array.isArray(result.warnings) || !result.warnings.length) return null;
  const list = document.createElement("ul");
  list.className = "warnings";
  list.setAttribute("aria-label", "Warnings");
  for (const warning of result.warnings) {
    const item = document.createElement("li");
    item.textContent = warning;
    list.appendChild(item);
  }
  return list;
}

function sentenceCard(text, result, index, compareLayers) {
  const card = document.createElement("article");
  card.className = "sentence";
  card.dataset.index = String(index);
  const number = index + 1;

  const head = document.createElement("div");
  head.className = "sentence-head";
  const title = document.createElement("h2");
  title.textContent = `${number}. ${sentenceText(text, result)}`;
  head.append(title, statsLine(result));
  card.appendChild(head);
  const warnings = warningList(result);
  if (warnings) card.appendChild(warnings);

  const main = treeView(result.tokens, result.tree, result.distances, `Tree of sentence ${number} (layer ${result.layer})`);
  main.classList.add("main-tree");
  card.appendChild(main);

  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Bracketed tree (PTB)";
  const pre = document.createElement("pre");
  pre.className = "ptb";
  pre.textContent = result.tree;
  details.append(summary, pre);
  const actions = document.createElement("div");
  actions.className = "card-actions";
  actions.append(copyButton("Copy PTB", `Copy the bracketed tree of sentence ${number}`, () => result.tree), details);
  card.appendChild(actions);

  if (compareLayers && Array.isArray(result.layer_trees)) card.appendChild(layerComparison(result, number));
  return card;
}

function layerComparison(result, number) {
  const section = document.createElement("section");
  section.className = "layer-comparison";
  const heading = document.createElement("h3");
  heading.textContent = "Every layer's tree";
  section.appendChild(heading);
  const grid = document.createElement("div");
  grid.className = "layer-grid";
  result.layer_trees.forEach((tree, layerIndex) => {
    const facts = state.layers.find((layer) => layer.index === layerIndex) || { index: layerIndex, devF1: null, isDefault: false };
    const panel = document.createElement("figure");
    panel.className = "layer-panel";
    panel.dataset.layer = String(layerIndex);
    if (layerIndex === result.layer) panel.classList.add("shown");
    const caption = document.createElement("figcaption");
    caption.textContent = layerLabel(facts) + (layerIndex === result.layer ? " · shown above" : "");
    const distances = Array.isArray(result.layer_distances) ? result.layer_distances[layerIndex] : null;
    const view = treeView(result.tokens, tree, distances, `Tree of sentence ${number} from layer ${layerIndex}`);
    const copy = copyButton("Copy PTB", `Copy the bracketed tree of sentence ${number} from layer ${layerIndex}`, () => tree);
    panel.append(caption, view, copy);
    grid.appendChild(panel);
  });
  section.appendChild(grid);
  return section;
}

// --- the tree: reading the PTB string --------------------------------------------------

function parsePtb(ptb, tokens) {
  // "(S (X The cat) (X sat .))" -> {start, end, leaf, children}; leaves are numbered in
  // order and drawn with the result's tokens (the PTB spelling escapes brackets)
  const pieces = ptb.match(/\(|\)|[^\s()]+/g) || [];
  let position = 0;
  let leafCount = 0;
  function node() {
    if (pieces[position] !== "(") {
      const leaf = { start: leafCount, end: leafCount + 1, leaf: true, children: [], word: PTB_UNESCAPES[pieces[position]] ?? pieces[position] };
      position += 1;
      leafCount += 1;
      return leaf;
    }
    position += 2; // "(" and the label
    const children = [];
    while (position < pieces.length && pieces[position] !== ")") children.push(node());
    position += 1;
    if (children.length === 1) return children[0]; // a preterminal or unary node: draw its child
    return { start: children[0].start, end: children[children.length - 1].end, leaf: false, children };
  }
  const root = node();
  const words = [];
  (function collect(item) { if (item.leaf) words.push(item.word); else item.children.forEach(collect); })(root);
  const sameLeaves = Array.isArray(tokens) && tokens.length === words.length;
  return { root, words: sameLeaves ? tokens : words };
}

// --- the tree: the picture ---------------------------------------------------------------

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

const measure = (() => {
  const context = document.createElement("canvas").getContext("2d");
  context.font = FONT;
  return (word) => context.measureText(word).width;
})();

function columnLayout(words, compact, axisRoom) {
  // one column per word: wide enough for the word, or (compact) narrow with slanted words
  const centers = [];
  let x = (compact ? 14 : 12) + axisRoom;
  for (const word of words) {
    const width = compact ? 22 : Math.max(measure(word) + 16, 36);
    centers.push(x + width / 2);
    x += width;
  }
  const longest = Math.max(0, ...words.map(measure));
  // a word slanted at 60 degrees reaches down sin(60) of its length and left cos(60) of it
  const labelDepth = compact ? longest * Math.sin(Math.PI / 3) + 10 : 22;
  const leftOverhang = compact ? Math.max(0, longest * 0.5 - centers[0]) + 6 : 0;
  return { centers: centers.map((center) => center + leftOverhang), width: x + 12 + leftOverhang, labelDepth };
}

function hasBars(words, distances) {
  return Array.isArray(distances) && distances.length === words.length;
}

function naturalWidth(words, distances) {
  return columnLayout(words, false, hasBars(words, distances) ? AXIS_ROOM : 0).width;
}

function drawTree(words, root, distances, compact, available) {
  const withBars = hasBars(words, distances);
  const { centers, width, labelDepth } = columnLayout(words, compact, withBars ? AXIS_ROOM : 0);
  // room above the root for its dot, drawn at a constant size on screen (see treeView)
  const top = Math.max(14, 7 / Math.min(1, available / width));

  // levels: leaves at the bottom, a node one level above its highest child
  function height(node) {
    node.height = node.leaf ? 0 : 1 + Math.max(...node.children.map(height));
    return node.height;
  }
  const levels = height(root);
  const levelGap = levels ? Math.max(16, Math.min(40, 440 / levels)) : 0;
  const leafPointY = top + levels * levelGap; // where the edges end
  const labelY = leafPointY + 16;
  const barTop = leafPointY + labelDepth + 8;
  const barHeight = withBars ? 70 : 0;
  const svgHeight = withBars ? barTop + barHeight + (compact ? 22 : 30) : barTop + 4;

  const svg = svgElement("svg", {
    class: compact ? "parse-tree compact" : "parse-tree", viewBox: `0 0 ${width} ${svgHeight}`, role: "img",
    "aria-label": `Tree over: ${words.join(" ")}`,
  });
  svg.dataset.naturalWidth = String(width);
  svg.dataset.naturalHeight = String(svgHeight);
  const bands = svgElement("g", { class: "bands" }, svg);
  const edges = svgElement("g", { class: "edges" }, svg);
  const nodes = svgElement("g", { class: "nodes" }, svg);
  const leaves = svgElement("g", { class: "leaves" }, svg);

  function position(node) {
    if (node.leaf) {
      node.x = centers[node.start];
      node.y = leafPointY;
    } else {
      node.children.forEach(position);
      node.x = (node.children[0].x + node.children[node.children.length - 1].x) / 2;
      node.y = top + (levels - node.height) * levelGap;
    }
  }
  position(root);

  const leafTexts = words.map((word, index) => {
    const attributes = compact
      ? { class: "leaf", x: centers[index], y: labelY - 8, transform: `rotate(-60 ${centers[index]} ${labelY - 8})`, "text-anchor": "end" }
      : { class: "leaf", x: centers[index], y: labelY };
    const text = svgElement("text", attributes, leaves);
    if (PUNCTUATION.test(word)) text.classList.add("punctuation");
    text.textContent = word;
    return text;
  });

  function draw(node) {
    if (node.leaf) return;
    for (const child of node.children) {
      // elbows (across at the parent's height, then straight down) never cross another
      // constituent's edges, as slanted lines from a high node to a far leaf do
      svgElement("path", { class: "edge", d: `M ${node.x} ${node.y} H ${child.x} V ${child.y}` }, edges);
      draw(child);
    }
    const band = svgElement("rect", {
      class: "span-band", x: centers[node.start] - 11, y: leafPointY - 4, rx: 4, height: 8,
      width: centers[node.end - 1] - centers[node.start] + 22,
    }, bands);
    const dot = svgElement("circle", { class: node === root ? "node root" : "node", cx: node.x, cy: node.y, r: node === root ? 6 : 4.5 }, nodes);
    svgElement("title", {}, dot).textContent = words.slice(node.start, node.end).join(" ");
    const highlight = (on) => {
      band.classList.toggle("visible", on);
      for (let index = node.start; index < node.end; index++) leafTexts[index].classList.toggle("highlight", on);
    };
    dot.addEventListener("mouseenter", () => highlight(true));
    dot.addEventListener("mouseleave", () => highlight(false));
  }
  draw(root);
  if (withBars) drawBars(svg, words, distances, centers, width, barTop, barHeight, compact);
  return { svg, rootX: root.x, rootY: root.y, top };
}

function axisTicks(highest) {
  // round steps of about a quarter of the range: 0, 0.25, ... 1 for distances in [0, 1]
  const rough = highest / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough - 1e-12);
  const count = Math.ceil(highest / step - 1e-9);
  return Array.from({ length: count + 1 }, (_, index) => Number((index * step).toFixed(6)));
}

function drawAxis(group, ticks, y, right) {
  // gridlines first, so that the bars are drawn over them
  const x = AXIS_ROOM - 4;
  for (const value of ticks) {
    if (value > 0) svgElement("line", { class: "gridline", x1: x, x2: right, y1: y(value), y2: y(value) }, group);
    svgElement("line", { class: "tick", x1: x - 4, x2: x, y1: y(value), y2: y(value) }, group);
    svgElement("text", { class: "tick-label", x: x - 6, y: y(value) + 3.5 }, group).textContent = String(value);
  }
  svgElement("line", { class: "axis", x1: x, x2: x, y1: y(0), y2: y(ticks[ticks.length - 1]) }, group);
  svgElement("line", { class: "axis", x1: x, x2: right, y1: y(0), y2: y(0) }, group);
}

function drawBars(svg, words, distances, centers, width, barTop, barHeight, compact) {
  // Bars start at 0 (distances lie in [0, 1]), so that their heights compare as the values do,
  // on an axis up to 1, or further for words that go higher.  Punctuation the parser attached
  // above every word (a distance beyond the axis) is drawn full height in another colour.
  const bars = svgElement("g", { class: "bars" }, svg);
  const wordValues = distances.filter((_, index) => !PUNCTUATION.test(words[index]));
  const ticks = axisTicks(Math.max(1, ...(wordValues.length ? wordValues : distances)));
  const top = ticks[ticks.length - 1];
  const baseline = barTop + barHeight;
  const y = (value) => baseline - (Math.max(0, Math.min(value, top)) / top) * barHeight;
  drawAxis(bars, ticks, y, width - 8);
  svgElement("text", { class: "axis-label", x: 2, y: baseline + (compact ? 16 : 24) }, bars).textContent = "distance";
  const barWidth = compact ? 14 : 18;
  distances.forEach((distance, index) => {
    const height = Math.max(1, baseline - y(distance)); // a zero is a sliver on the axis, not nothing
    const bar = svgElement("rect", {
      class: distance > top ? "bar top" : "bar", x: centers[index] - barWidth / 2, width: barWidth, rx: 2,
      y: baseline - height, height,
    }, bars);
    bar.dataset.value = String(distance);
    svgElement("title", {}, bar).textContent = `${words[index]}: ${distance.toFixed(4)}`;
    // the values under the bars only where the columns leave room to read them
    if (!compact) {
      svgElement("text", { class: "bar-value", x: centers[index], y: baseline + 12 }, bars)
        .textContent = distance.toFixed(2);
    }
  });
}

// --- the tree: the zoomable view -----------------------------------------------------------

function zoomButton(label, text, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small zoom";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.addEventListener("click", action);
  return button;
}

function treeView(tokens, ptb, distances, label) {
  // A box that draws the tree once it knows its own width: words in natural columns when
  // they fit, slanted in narrow columns otherwise, and the picture scaled to the box ("fit").
  const { root, words } = parsePtb(ptb, tokens);
  const view = document.createElement("div");
  view.className = "tree-view";
  const toolbar = document.createElement("div");
  toolbar.className = "zoom-bar";
  const scroller = document.createElement("div");
  scroller.className = "figure";
  scroller.tabIndex = 0;
  scroller.setAttribute("role", "group");
  scroller.setAttribute("aria-label", `${label}; + and - zoom, 0 fits the width`);
  const readout = document.createElement("span");
  readout.className = "zoom-level";
  readout.setAttribute("aria-live", "polite");
  const hint = document.createElement("span");
  hint.className = "zoom-hint";
  hint.textContent = "words too small to read: zoom in (+) and scroll sideways";
  hint.hidden = true;
  let drawing = null;
  let zoom = "fit";

  function fitScale() {
    const natural = Number(drawing.svg.dataset.naturalWidth);
    return Math.min(1, Math.max(scroller.clientWidth - 2, 1) / natural);
  }
  function apply() {
    if (!drawing) return;
    const natural = Number(drawing.svg.dataset.naturalWidth);
    const scale = zoom === "fit" ? fitScale() : zoom;
    drawing.svg.setAttribute("width", String(natural * scale));
    drawing.svg.setAttribute("height", String(Number(drawing.svg.dataset.naturalHeight) * scale));
    readout.textContent = zoom === "fit" ? `fit (${Math.round(scale * 100)}%)` : `${Math.round(scale * 100)}%`;
    // dots keep a size one can see and point at, however far the picture is shrunk
    for (const dot of drawing.svg.querySelectorAll("circle.node")) {
      const onScreen = dot.classList.contains("root") ? 6 : 4.5;
      dot.setAttribute("r", String(Math.min(onScreen / scale, dot.classList.contains("root") ? drawing.top - 1 : 9)));
    }
    hint.hidden = FONT_SIZE * scale >= 7;
    view.dataset.scale = scale.toFixed(4);
    // the root stays in sight: centre it whenever the tree is wider than the box
    scroller.scrollLeft = Math.max(0, drawing.rootX * scale - scroller.clientWidth / 2);
  }
  function setZoom(next) {
    const current = zoom === "fit" ? fitScale() : zoom;
    zoom = next === "fit" ? "fit" : Math.min(MAX_ZOOM, Math.max(Math.min(fitScale(), 1) * 0.5, next(current)));
    apply();
  }
  function draw() {
    const available = scroller.clientWidth;
    if (!available) return false; // not laid out yet (hidden); the observer calls again
    const compact = naturalWidth(words, distances) * COMPACT_BELOW > available;
    drawing = drawTree(words, root, distances, compact, available);
    scroller.replaceChildren(drawing.svg);
    apply();
    return true;
  }

  toolbar.append(
    hint,
    zoomButton("Zoom out", "−", () => setZoom((scale) => scale / ZOOM_STEP)),
    zoomButton("Fit the tree to the width", "Fit", () => setZoom("fit")),
    zoomButton("Zoom in", "+", () => setZoom((scale) => scale * ZOOM_STEP)),
    zoomButton("Actual size", "1:1", () => setZoom(() => 1)),
    readout,
  );
  scroller.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "+" || event.key === "=") setZoom((scale) => scale * ZOOM_STEP);
    else if (event.key === "-" || event.key === "_") setZoom((scale) => scale / ZOOM_STEP);
    else if (event.key === "0") setZoom("fit");
    else return;
    event.preventDefault();
  });
  view.append(toolbar, scroller);
  let drawnAt = 0;
  new ResizeObserver(() => {
    if (!drawing || Math.abs(scroller.clientWidth - drawnAt) > 40) {
      // first drawing, or the box changed a lot: choose the column layout again
      if (draw()) drawnAt = scroller.clientWidth;
    } else if (zoom === "fit") {
      apply();
    }
  }).observe(scroller);
  return view;
}

// --- wiring ---------------------------------------------------------------------------

elements.form.addEventListener("submit", parseText);
elements.language.addEventListener("change", chooseLanguage);
// An error is about the text that was sent: it goes as soon as the form is edited, and when the
// browser's own check (an empty box) stops a submit, which the page never sees as a submit.
elements.form.addEventListener("input", () => showError(null));
elements.form.addEventListener("invalid", () => showError(null), true);
elements.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) elements.form.requestSubmit();
});
for (const option of [...elements.decoder.options, ...elements.gate.options]) option.dataset.label = option.textContent;
showModel();
