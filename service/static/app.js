// The page: sends the text to POST /parse and draws each sentence's tree (from its spans)
// with the per-token syntactic distances as a bar chart under the words.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const FONT = '15px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
const PUNCTUATION = /^[\p{P}\p{S}]+$/u;

const elements = {
  form: document.getElementById("parse-form"),
  text: document.getElementById("text"),
  layer: document.getElementById("layer"),
  decoder: document.getElementById("decoder"),
  button: document.getElementById("parse-button"),
  error: document.getElementById("error"),
  results: document.getElementById("results"),
  modelInfo: document.getElementById("model-info"),
};

// --- talking to the API ---------------------------------------------------------------

async function apiError(response) {
  // every error of the API is {"error": {"code", "message", ...}}; anything else is shown raw
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (ignored) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function showModel() {
  let response;
  try {
    response = await fetch("/ready");
  } catch (error) {
    elements.modelInfo.textContent = "The service cannot be reached; is it running?";
    return;
  }
  const readiness = await response.json().catch(() => ({}));
  if (response.status !== 200) {
    if (readiness.status === "failed") {
      elements.modelInfo.textContent = `The model could not be loaded: ${readiness.error}`;
      return;
    }
    elements.modelInfo.textContent = "The model is loading…";
    setTimeout(showModel, 2000);
    return;
  }
  const card = await (await fetch("/model")).json();
  const facts = [`<strong>${escapeHtml(card.name)}</strong> (version ${escapeHtml(card.version)})`,
    `${card.n_layers} layers`, `${card.vocabulary_size.toLocaleString()} words`];
  if (typeof card.dev_perplexity === "number") facts.push(`dev perplexity ${card.dev_perplexity.toFixed(1)}`);
  if (typeof card.dev_f1 === "number") facts.push(`dev F1 ${card.dev_f1.toFixed(1)}`);
  elements.modelInfo.innerHTML = facts.join(" · ");
  for (let layer = 0; layer < card.n_layers; layer++) {
    const option = document.createElement("option");
    option.value = String(layer);
    option.textContent = layer === card.default_layer ? `${layer} (default)` : String(layer);
    elements.layer.appendChild(option);
  }
}

async function parseText(event) {
  event.preventDefault();
  const text = elements.text.value;
  if (!text.trim()) {
    showError("Type a sentence first.");
    return;
  }
  const request = { text };
  if (elements.layer.value !== "") request.layer = Number(elements.layer.value);
  if (elements.decoder.value !== "") request.decoder = elements.decoder.value;
  elements.button.disabled = true;
  elements.button.textContent = "Parsing…";
  showError(null);
  try {
    const response = await fetch("/parse", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    if (!response.ok) {
      showError(await apiError(response));
      return;
    }
    const body = await response.json();
    renderResults(text, body.results);
  } catch (error) {
    showError(`The request failed: ${error.message}`);
  } finally {
    elements.button.disabled = false;
    elements.button.textContent = "Parse";
  }
}

function showError(message) {
  elements.error.hidden = !message;
  elements.error.textContent = message || "";
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

// --- results --------------------------------------------------------------------------

function renderResults(text, results) {
  elements.results.replaceChildren();
  results.forEach((result, index) => {
    const card = document.createElement("article");
    card.className = "sentence";
    card.dataset.index = String(index);

    const head = document.createElement("div");
    head.className = "sentence-head";
    const title = document.createElement("h2");
    const [first, last] = [result.offsets[0][0], result.offsets[result.offsets.length - 1][1]];
    title.textContent = `${index + 1}. ${text.slice(first, last)}`;
    const stats = document.createElement("div");
    stats.className = "stats";
    const perplexity = result.perplexity === null ? "n/a" : result.perplexity.toFixed(1);
    stats.innerHTML = `perplexity <b class="perplexity">${perplexity}</b> · ${result.tokens.length} tokens · layer ${result.layer}`;
    head.append(title, stats);

    const figure = document.createElement("div");
    figure.className = "figure";
    figure.appendChild(drawTree(result.tokens, result.spans, result.distances));

    const details = document.createElement("details");
    details.innerHTML = "<summary>Bracketed tree</summary>";
    const pre = document.createElement("pre");
    pre.textContent = result.tree;
    details.appendChild(pre);

    card.append(head, figure, details);
    elements.results.appendChild(card);
  });
}

// --- the tree picture -------------------------------------------------------------------

function buildTree(tokens, spans) {
  // the same reading of spans as models.tree.spans_to_tree: a node's children are the
  // longest spans strictly inside it, and single tokens where no span starts
  const spanEnds = new Map();
  for (const [start, end] of spans) {
    if (!spanEnds.has(start)) spanEnds.set(start, []);
    spanEnds.get(start).push(end);
  }
  function childEnd(start, parentStart, parentEnd) {
    const longest = start === parentStart ? parentEnd - 1 : parentEnd;
    const ends = (spanEnds.get(start) || []).filter((end) => end <= longest && end > start + 1);
    return ends.length ? Math.max(...ends) : start + 1;
  }
  function node(start, end) {
    if (end - start === 1) return { start, end, leaf: true, children: [] };
    const children = [];
    for (let position = start; position < end;) {
      const stop = childEnd(position, start, end);
      children.push(node(position, stop));
      position = stop;
    }
    return { start, end, leaf: false, children };
  }
  return node(0, tokens.length);
}

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

function drawTree(tokens, spans, distances) {
  const root = buildTree(tokens, spans);

  // columns: one per token, wide enough for the word
  const centers = [];
  let x = 12;
  for (const token of tokens) {
    const width = Math.max(measure(token) + 16, 36);
    centers.push(x + width / 2);
    x += width;
  }
  const width = x + 12;

  // levels: leaves at the bottom, a node one level above its highest child
  function height(node) {
    node.height = node.leaf ? 0 : 1 + Math.max(...node.children.map(height));
    return node.height;
  }
  const levels = height(root);
  const levelGap = levels ? Math.max(16, Math.min(40, 440 / levels)) : 0;
  const top = 14;
  const leafY = top + levels * levelGap + 22; // baseline of the words
  const barTop = leafY + 14;
  const barHeight = 70;
  const svgHeight = barTop + barHeight + 30;

  const svg = svgElement("svg", {
    class: "parse-tree", width, height: svgHeight, viewBox: `0 0 ${width} ${svgHeight}`, role: "img",
    "aria-label": `Tree over: ${tokens.join(" ")}`,
  });
  const bands = svgElement("g", { class: "bands" }, svg);
  const edges = svgElement("g", { class: "edges" }, svg);
  const nodes = svgElement("g", { class: "nodes" }, svg);
  const leaves = svgElement("g", { class: "leaves" }, svg);
  const bars = svgElement("g", { class: "bars" }, svg);

  function position(node) {
    if (node.leaf) {
      node.x = centers[node.start];
      node.y = leafY - 16;
    } else {
      node.children.forEach(position);
      node.x = (node.children[0].x + node.children[node.children.length - 1].x) / 2;
      node.y = top + (levels - node.height) * levelGap;
    }
  }
  position(root);

  const leafTexts = tokens.map((token, index) => {
    const text = svgElement("text", { class: "leaf", x: centers[index], y: leafY }, leaves);
    if (PUNCTUATION.test(token)) text.classList.add("punctuation");
    text.textContent = token;
    return text;
  });

  function draw(node) {
    if (node.leaf) return;
    for (const child of node.children) {
      svgElement("line", { class: "edge", x1: node.x, y1: node.y, x2: child.x, y2: child.y }, edges);
      draw(child);
    }
    const band = svgElement("rect", {
      class: "span-band", x: centers[node.start] - 14, y: leafY - 17, rx: 4, height: 23,
      width: centers[node.end - 1] - centers[node.start] + 28,
    }, bands);
    const dot = svgElement("circle", { class: node === root ? "node root" : "node", cx: node.x, cy: node.y, r: 4.5 }, nodes);
    svgElement("title", {}, dot).textContent = tokens.slice(node.start, node.end).join(" ");
    const highlight = (on) => {
      band.classList.toggle("visible", on);
      for (let index = node.start; index < node.end; index++) leafTexts[index].classList.toggle("highlight", on);
    };
    dot.addEventListener("mouseenter", () => highlight(true));
    dot.addEventListener("mouseleave", () => highlight(false));
  }
  draw(root);

  // the distances: words decide the scale; punctuation the parser attached above every
  // word (distance beyond the words' range) is drawn full height in another colour
  const wordValues = distances.filter((_, index) => !PUNCTUATION.test(tokens[index]));
  const scaleValues = wordValues.length ? wordValues : distances;
  const low = Math.min(...scaleValues);
  const high = Math.max(...scaleValues);
  const span = high - low || 1;
  svgElement("line", { class: "axis", x1: 8, x2: width - 8, y1: barTop + barHeight, y2: barTop + barHeight }, bars);
  svgElement("text", { class: "axis-label", x: 8, y: barTop + barHeight + 24 }, bars).textContent = "distance";
  distances.forEach((distance, index) => {
    const clipped = distance > high;
    const share = clipped ? 1 : (distance - low) / span;
    const h = 4 + share * (barHeight - 4);
    const bar = svgElement("rect", {
      class: clipped ? "bar top" : "bar", x: centers[index] - 9, width: 18, rx: 2,
      y: barTop + barHeight - h, height: h,
    }, bars);
    svgElement("title", {}, bar).textContent = `${tokens[index]}: ${distance.toFixed(4)}`;
    svgElement("text", { class: "bar-value", x: centers[index], y: barTop + barHeight + 12 }, bars)
      .textContent = distance.toFixed(2);
  });
  return svg;
}

// --- wiring ---------------------------------------------------------------------------

elements.form.addEventListener("submit", parseText);
elements.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) elements.form.requestSubmit();
});
showModel();
