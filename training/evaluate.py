"""Parsing evaluation: gold preparation, bracket scoring, baselines and a CLI.

The protocol is the one in ``shared/EVALUATION.md`` (the ON-LSTM paper's own):

* **words mode** (the reference): the model reads only the words of each gold tree
  (leaves tagged with one of the 36 ``WORD_TAGS``), and its binary tree over them is
  compared with the gold tree restricted to those words;
* **raw mode**: the model reads the full token sequence (punctuation included, traces
  removed, PTB escapes undone); its tree is then restricted to the words
  (``restrict_spans``) and scored exactly as in words mode.

Brackets are unlabelled ``(start, end)`` spans, end exclusive, of two or more words,
never the whole sentence.  Every figure is a percentage.

The scoring functions are model-agnostic: ``evaluate_model`` takes any
``distances_fn(token_lists) -> [sentence][layer][token]``; ``parser_distances`` and
``unk_share`` take a ``Parser`` their caller loaded (this module never imports the model
code).  ``write_evalb_files`` writes the same brackets for EVALB.  The command line is
``onlstm.cli.evaluate`` (``onlstm eval``).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nltk import Tree

from ..models.trees.decoders import (
    balanced_spans,
    decode_spans,
    escape_token,
    follows_mark,
    left_branching_spans,
    punctuation_first_distances,
    random_spans,
    right_branching_spans,
    unescape_token,
)
from .text_files import CorpusError, default_data_dir, ptb_split_files

logger = logging.getLogger(__name__)

Span = tuple[int, int]

# Step 1 of the protocol: leaves with one of these POS tags are the words.
# fmt: off
WORD_TAGS = frozenset({
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP", "NNPS", "PDT", "POS", "PRP",
    "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB",
})
# fmt: on
TRACE_TAG = "-NONE-"
RECALL_LABELS = ("NP", "VP", "PP", "SBAR", "ADJP")
MODES = ("words", "raw")
DECODER_NAMES = ("greedy", "split")
DEFAULT_KEYS = ("layer", "decoder", "right_branching_bias")  # what marks a report's default row
RANDOM_SEEDS = (0, 1, 2)
WSJ10_MAX_WORDS = 10
MEAN_LAYER = "mean"

DistancesFn = Callable[[list[list[str]]], Sequence[Sequence[Sequence[float]]]]


# --- gold preparation -------------------------------------------------------------------


def strip_function_tags(label: str) -> str:
    """``NP-SBJ-1`` -> ``NP``, ``NP=2`` -> ``NP``, ``PP-LOC-CLR`` -> ``PP``.

    Labels that start with ``-`` (``-NONE-``, ``-LRB-``, ``-RRB-``) are returned as they are.
    """
    if not label or label.startswith("-"):
        return label
    for index, char in enumerate(label):
        if char in "-=":
            return label[:index]
    return label


@dataclass(frozen=True)
class GoldSentence:
    """One gold tree prepared for scoring.

    Attributes:
        tokens: the full token sequence (traces removed, PTB escapes undone): raw-mode input.
        word_mask: for each token, whether it is a word (its POS is in ``WORD_TAGS``).
        words: the words, as written: words-mode input.
        brackets: gold spans over word positions, of two or more words, not the whole sentence.
        labelled: ``(start, end, label)`` for the same brackets, function tags stripped; a span
            left by a collapsed unary chain carries every label of the chain.
    """

    tokens: tuple[str, ...]
    word_mask: tuple[bool, ...]
    words: tuple[str, ...]
    brackets: frozenset[Span]
    labelled: frozenset[tuple[int, int, str]] = field(default=frozenset())

    @property
    def n_words(self) -> int:
        return len(self.words)


def prepare_gold(tree: Tree) -> GoldSentence:
    """Steps 1 and 3 of the protocol on one gold tree (see ``GoldSentence``).

    Traces are removed; constituents with no word are dropped; a constituent whose words
    are those of its only remaining child is the same bracket (unary chains collapse),
    so brackets are the distinct word spans of two or more words.
    """
    tokens: list[str] = []
    mask: list[bool] = []
    labelled: set[tuple[int, int, str]] = set()

    def walk(node: Tree | str, start: int) -> int:
        """Visit ``node`` whose first word has index ``start``; return the index after its last word."""
        if not isinstance(node, Tree):  # a bare leaf without a POS: never happens in .mrg files
            return start
        if len(node) == 1 and not isinstance(node[0], Tree):  # preterminal
            tag = node.label()
            if tag == TRACE_TAG:
                return start
            is_word = tag in WORD_TAGS
            tokens.append(unescape_token(node[0]))
            mask.append(is_word)
            return start + 1 if is_word else start
        end = start
        for child in node:
            end = walk(child, end)
        if end - start >= 2:
            labelled.add((start, end, strip_function_tags(node.label())))
        return end

    n_words = walk(tree, 0)
    labelled = {item for item in labelled if (item[0], item[1]) != (0, n_words)}
    words = tuple(token for token, is_word in zip(tokens, mask) if is_word)
    return GoldSentence(
        tokens=tuple(tokens),
        word_mask=tuple(mask),
        words=words,
        brackets=frozenset((start, end) for start, end, _ in labelled),
        labelled=frozenset(labelled),
    )


def prepare_gold_trees(trees: Iterable[Tree]) -> list[GoldSentence]:
    """``prepare_gold`` on each tree, leaving out those without a word (logged)."""
    prepared = []
    skipped = 0
    for tree in trees:
        gold = prepare_gold(tree)
        if gold.n_words == 0:
            skipped += 1
            continue
        prepared.append(gold)
    if skipped:
        logger.warning("left out %d gold trees with no word", skipped)
    return prepared


# --- spans ------------------------------------------------------------------------------


def restrict_spans(spans: Iterable[Span], keep_mask: Sequence[bool]) -> list[Span]:
    """Restrict a tree over all positions to the kept positions, re-indexed over them.

    Deleting the leaves that are not kept, dropping nodes left empty and collapsing
    nodes left with one child leaves exactly the distinct kept-position yields of two
    or more positions; this returns them in pre-order (start ascending, longer first).
    The whole (kept) sequence is included when the input tree included it.
    """
    rank: list[int] = []  # rank[i] = number of kept positions before position i
    kept = 0
    for keep in keep_mask:
        rank.append(kept)
        kept += bool(keep)
    rank.append(kept)
    restricted = set()
    for start, end in spans:
        if not 0 <= start < end <= len(keep_mask):
            raise ValueError(f"span {(start, end)} out of range for {len(keep_mask)} positions")
        new_start, new_end = rank[start], rank[end]
        if new_end - new_start >= 2:
            restricted.add((new_start, new_end))
    return sorted(restricted, key=lambda span: (span[0], -span[1]))


def predicted_brackets(spans: Iterable[Span], n_words: int) -> frozenset[Span]:
    """Scorable predicted brackets: spans of two or more words, not the whole sentence."""
    return frozenset(span for span in spans if span[1] - span[0] >= 2 and span != (0, n_words))


def sentence_brackets(gold: GoldSentence, spans: Iterable[Span], mode: str) -> frozenset[Span]:
    """The predicted brackets of one sentence, from a tree over the mode's input tokens."""
    _check_mode(mode)
    if mode == "raw":
        spans = restrict_spans(spans, gold.word_mask)
    return predicted_brackets(spans, gold.n_words)


def with_punctuation_first(distances: Sequence[Sequence[Sequence[float]]],
                           golds: Sequence[GoldSentence]) -> list[list[list[float]]]:
    """Words-mode distances ``[sentence][layer][word]`` with ``punctuation_first`` applied: each gold
    sentence's marks say which words follow one, as a parse of its tokens would."""
    return [[punctuation_first_distances(layer, follows_mark(gold.word_mask)) for layer in layers]
            for layers, gold in zip(distances, golds)]


def model_input(gold: GoldSentence, mode: str) -> list[str]:
    """The tokens the model reads: the words (words mode) or every token (raw mode)."""
    _check_mode(mode)
    return list(gold.words if mode == "words" else gold.tokens)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")


# --- scoring ----------------------------------------------------------------------------


def f1_score(matched: int, predicted: int, gold: int) -> float:
    """F1 in [0, 1] with the protocol's convention: no gold bracket -> recall 1, and
    precision 1 as well when nothing is predicted."""
    recall = matched / gold if gold else 1.0
    if predicted:
        precision = matched / predicted
    else:
        precision = 1.0 if not gold else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _percent(numerator: float, denominator: float) -> float | None:
    return 100.0 * numerator / denominator if denominator else None


def score_brackets(golds: Sequence[GoldSentence], predictions: Sequence[frozenset[Span]]) -> dict:
    """Score predicted brackets against the gold sentences (one prediction per sentence).

    Returns a JSON-serialisable dict of percentages: ``sentence_f1`` (mean of per-sentence
    F1), ``corpus_f1`` (from counts summed over sentences), ``wsj10_sentence_f1`` and
    ``wsj10_corpus_f1`` (sentences of at most 10 words; ``None`` if there are none),
    ``label_recall`` (``{label: percent or None}`` for ``RECALL_LABELS``), plus
    ``n_sentences`` and ``n_wsj10``.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold sentences")
    totals = {"all": [0, 0, 0, 0.0, 0], "wsj10": [0, 0, 0, 0.0, 0]}  # matched, predicted, gold, sum F1, count
    label_found = dict.fromkeys(RECALL_LABELS, 0)
    label_total = dict.fromkeys(RECALL_LABELS, 0)
    for gold, predicted in zip(golds, predictions):
        predicted = frozenset(predicted)
        matched = len(predicted & gold.brackets)
        sentence_f1 = f1_score(matched, len(predicted), len(gold.brackets))
        groups = ("all", "wsj10") if gold.n_words <= WSJ10_MAX_WORDS else ("all",)
        for group in groups:
            counts = totals[group]
            counts[0] += matched
            counts[1] += len(predicted)
            counts[2] += len(gold.brackets)
            counts[3] += sentence_f1
            counts[4] += 1
        for start, end, label in gold.labelled:
            if label in label_total:
                label_total[label] += 1
                label_found[label] += (start, end) in predicted

    def corpus(counts: list) -> float | None:
        return 100.0 * f1_score(counts[0], counts[1], counts[2]) if counts[4] else None

    return {
        "sentence_f1": _percent(totals["all"][3], totals["all"][4]),
        "corpus_f1": corpus(totals["all"]),
        "wsj10_sentence_f1": _percent(totals["wsj10"][3], totals["wsj10"][4]),
        "wsj10_corpus_f1": corpus(totals["wsj10"]),
        "label_recall": {label: _percent(label_found[label], label_total[label]) for label in RECALL_LABELS},
        "n_sentences": totals["all"][4],
        "n_wsj10": totals["wsj10"][4],
    }


def score_spans(golds: Sequence[GoldSentence], trees: Sequence[Iterable[Span]], mode: str = "words") -> dict:
    """``score_brackets`` for trees given as spans over each sentence's model input."""
    return score_brackets(golds, [sentence_brackets(gold, spans, mode) for gold, spans in zip(golds, trees)])


def _mean_metrics(reports: Sequence[dict]) -> dict:
    """Field-by-field mean of several ``score_brackets`` results."""

    def mean(values: list) -> float | None:
        values = [value for value in values if value is not None]
        return sum(values) / len(values) if values else None

    first = reports[0]
    merged: dict = {}
    for key, value in first.items():
        if isinstance(value, dict):
            merged[key] = {name: mean([report[key][name] for report in reports]) for name in value}
        elif key.startswith("n_"):
            merged[key] = value
        else:
            merged[key] = mean([report[key] for report in reports])
    return merged


# --- baselines --------------------------------------------------------------------------


BASELINES: dict[str, Callable[[int], list[Span]]] = {
    "left-branching": left_branching_spans,
    "right-branching": right_branching_spans,
    "balanced": balanced_spans,
}


def evaluate_baselines(golds: Sequence[GoldSentence], mode: str = "words") -> list[dict]:
    """Left-branching, right-branching, balanced and random (mean of seeds 0, 1, 2) trees.

    The trees are built over the mode's input (in raw mode over every token, then
    restricted to the words).  Returns rows ``{"name": ..., **score_brackets(...)}``.
    """
    _check_mode(mode)
    lengths = [len(model_input(gold, mode)) for gold in golds]
    rows = []
    for name, build in BASELINES.items():
        rows.append({"name": name, **score_spans(golds, [build(n) for n in lengths], mode)})
    per_seed = []
    for seed in RANDOM_SEEDS:
        rng = random.Random(seed)
        per_seed.append(score_spans(golds, [random_spans(n, rng) for n in lengths], mode))
    rows.append({"name": f"random ({len(RANDOM_SEEDS)} seeds)", **_mean_metrics(per_seed)})
    return rows


# --- model ------------------------------------------------------------------------------


def _layer_count(inputs: Sequence[Sequence[str]], distances: Sequence[Sequence[Sequence[float]]]) -> int:
    """The number of layers of ``distances`` ``[sentence][layer][token]``; ``ValueError`` unless every
    sentence has that many layers of one distance per token of its input."""
    if len(distances) != len(inputs):
        raise ValueError(f"distances_fn returned {len(distances)} sentences for {len(inputs)}")
    n_layers = None
    for index, (tokens, layers) in enumerate(zip(inputs, distances)):
        if n_layers is None:
            n_layers = len(layers)
        if len(layers) != n_layers or n_layers == 0:
            raise ValueError(f"sentence {index}: {len(layers)} layers of distances, expected {n_layers or '>= 1'}")
        for number, values in enumerate(layers):
            if len(values) != len(tokens):
                raise ValueError(f"sentence {index}, layer {number}: {len(values)} distances for {len(tokens)} tokens")
    return n_layers or 0


def evaluate_model(
    gold_trees: Sequence[Tree] | Sequence[GoldSentence],
    distances_fn: DistancesFn,
    mode: str = "words",
    decoders: Sequence[str] = DECODER_NAMES,
    baselines: bool = True,
    right_branching_biases: Sequence[float] = (0.0,),
    log_rows: bool = True,
) -> dict:
    """Score a model's per-layer distances on gold trees, every layer and decoder.

    Args:
        gold_trees: ``nltk.Tree`` gold trees (or sentences already through ``prepare_gold``).
        distances_fn: called once with the list of input sentences (the gold words as
            written in words mode; every token, original case, in raw mode); returns, per
            sentence, per layer, one distance per token.
        mode: ``"words"`` or ``"raw"``.
        decoders: names understood by ``models.trees.decoders.decode_spans``.
        baselines: also score the baselines on the same sentences.
        right_branching_biases: strengths of the decoders' right-branching prior to score
            (``models.trees.decoders.right_branching_prior``; 0: the distances as they are).
        log_rows: log each row's F1 as it is scored (INFO); training says it once per evaluation.
    Returns:
        A JSON-serialisable dict: ``mode``, ``n_sentences``, ``n_wsj10``, ``n_layers``,
        ``baselines`` (rows from ``evaluate_baselines``) and ``model``: one row per layer
        (0-based, then ``"mean"``, the per-token mean over layers), decoder and prior, each
        ``{"name", "layer", "decoder", "right_branching_bias", **score_brackets(...)}``.
    """
    _check_mode(mode)
    golds = _as_golds(gold_trees)
    inputs = [model_input(gold, mode) for gold in golds]
    distances = list(distances_fn(inputs)) if inputs else []
    n_layers = _layer_count(inputs, distances)

    def mean_layer(layers: Sequence[Sequence[float]]) -> list[float]:
        return [sum(float(layer[t]) for layer in layers) / len(layers) for t in range(len(layers[0]))]

    layer_names: list[int | str] = list(range(n_layers)) + ([MEAN_LAYER] if n_layers else [])
    rows = []
    for layer in layer_names:
        if isinstance(layer, str):  # MEAN_LAYER, the one name that is not a layer's number
            per_sentence = [mean_layer(layers) for layers in distances]
        else:
            per_sentence = [[float(value) for value in layers[layer]] for layers in distances]
        for decoder, bias in itertools.product(decoders, right_branching_biases):
            trees = [decode_spans(values, decoder, bias) for values in per_sentence]
            metrics = score_spans(golds, trees, mode)
            name = f"layer {layer} {decoder}" if layer != MEAN_LAYER else f"mean {decoder}"
            name += f", prior {bias:g}" if bias else ""
            rows.append({"name": name, "layer": layer, "decoder": decoder, "right_branching_bias": bias, **metrics})
            if log_rows:
                logger.info("%s: sentence F1 %.1f", name, metrics["sentence_f1"] or 0.0)
    wsj10 = sum(gold.n_words <= WSJ10_MAX_WORDS for gold in golds)
    return {
        "mode": mode,
        "n_sentences": len(golds),
        "n_wsj10": wsj10,
        "n_layers": n_layers,
        "baselines": evaluate_baselines(golds, mode) if baselines else [],
        "model": rows,
    }


def baseline_report(gold_trees: Sequence[Tree] | Sequence[GoldSentence], mode: str = "words") -> dict:
    """A report shaped like ``evaluate_model``'s with the baselines only (no model rows)."""
    golds = _as_golds(gold_trees)
    return {
        "mode": mode,
        "n_sentences": len(golds),
        "n_wsj10": sum(gold.n_words <= WSJ10_MAX_WORDS for gold in golds),
        "n_layers": 0,
        "baselines": evaluate_baselines(golds, mode),
        "model": [],
    }


def _as_golds(gold_trees: Sequence[Tree] | Sequence[GoldSentence]) -> list[GoldSentence]:
    if all(isinstance(item, GoldSentence) for item in gold_trees):
        return list(gold_trees)
    return prepare_gold_trees(gold_trees)


# --- output -----------------------------------------------------------------------------


def format_table(report: dict) -> str:
    """A plain-text table of one report (baselines first, then the model's rows).

    Columns: sentence F1, corpus F1, WSJ10 sentence F1, and label recall for NP, VP, PP,
    SBAR, ADJP.  If ``report["default"]`` is ``{"layer": ..., "decoder": ...,
    "right_branching_bias": ...}``, that row is marked with ``*``.
    """
    default = report.get("default") or {}
    header = ["", "sent F1", "corpus F1", "WSJ10 F1", *RECALL_LABELS]
    lines = []

    def cells(row: dict) -> list[str]:
        values = [row["sentence_f1"], row["corpus_f1"], row["wsj10_sentence_f1"]]
        values += [row["label_recall"][label] for label in RECALL_LABELS]
        return ["-" if value is None else f"{value:.1f}" for value in values]

    body: list[list[str]] = []
    for row in report.get("baselines", []):
        body.append([row["name"], *cells(row)])
    for row in report.get("model", []):
        mark = " *" if default and all(row.get(key, 0.0) == default.get(key, 0.0) for key in DEFAULT_KEYS) else ""
        body.append([row["name"] + mark, *cells(row)])
    widths = [max(len(line[column]) for line in [header, *body]) for column in range(len(header))]

    def render(line: list[str]) -> str:
        return "  ".join([line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])])

    title = (
        f"mode: {report.get('mode')}  sentences: {report.get('n_sentences')}  "
        f"WSJ10: {report.get('n_wsj10')}  (F1 and label recall in %, layers 0-based)"
    )
    lines.append(title)
    lines.append(render(header))
    lines.append("-" * len(lines[-1]))
    n_baselines = len(report.get("baselines", []))
    for index, line in enumerate(body):
        if index == n_baselines and n_baselines and len(body) > n_baselines:
            lines.append("-" * len(lines[1]))
        lines.append(render(line))
    if default and report.get("model"):
        prior = default.get("right_branching_bias") or 0.0
        gate = report.get("gate", "forget")
        lines.append(f"* default: layer {default.get('layer')}, decoder {default.get('decoder')}"
                     + (f", right-branching prior {prior:g}" if prior else "")
                     + ("" if gate == "forget" else f"; every row: the master {gate} gate's distances"))
    return "\n".join(lines)


# --- a parser on gold trees (the model code is imported by the caller) ------------------


def gold_files(files: str | Path | None = None, data: str | Path | None = None, split: str = "dev") -> list[Path]:
    """The .mrg files to score: ``files`` (one file or every .mrg of a folder), else the
    ``split`` of ``ptb-sample`` in ``data`` (default ``$ONLSTM_DATA`` or ``../shared/data``)."""
    if files:
        folder = Path(files)
        if folder.is_file():
            return [folder]
        found = sorted(folder.glob("*.mrg"))
        if not found:
            raise CorpusError(f"no .mrg file in {folder}")
        return found
    return ptb_split_files(Path(data) if data else default_data_dir(), split)


def parser_distances(parser, golds: Sequence[GoldSentence], mode: str, batch_size: int = 64,
                     gate: str | None = None) -> list:
    """``parser.layer_distances`` ``[sentence][layer][token]`` over each sentence's model input, from
    the master ``gate`` (default: the model's).

    Words mode feeds every word of the 36 tags to the model, even ones that look like
    punctuation (``%``, ``&``), as the protocol says; raw mode uses the model's own handling.
    """
    punctuation = "model" if mode == "words" else None
    inputs = [model_input(gold, mode) for gold in golds]
    return parser.layer_distances(inputs, batch_size=batch_size, punctuation=punctuation, gate=gate)


def read_perplexity(parser, sentences: Sequence[Sequence[str]], punctuation: str, batch_size: int = 64) -> dict:
    """The model's perplexity over ``sentences`` as it reads them under ``punctuation``: a fresh
    state per sentence, exp of the mean NLL over every token read and each sentence's ``<eos>``;
    ``{"perplexity", "loss" (mean NLL), "unk_share" (of the words read), "tokens" (units read, <eos> included)}``;
    a character reader's perplexity is per character."""
    results = parser.parse([list(sentence) for sentence in sentences], layer=0, punctuation=punctuation,
                           batch_size=batch_size)
    total_nll = total_tokens = total_unknown = 0.0
    total_words = 0
    for sentence, result in zip(sentences, results):
        positions = parser.model_positions(sentence, punctuation)
        n_words, n_units = len(positions), parser.units_read([sentence[index] for index in positions])
        total_nll += math.log(result.perplexity) * (n_units + 1)  # the units read (words or characters), and <eos>
        total_tokens += n_units + 1
        total_unknown += result.unk_share * n_words
        total_words += n_words
    loss = total_nll / max(total_tokens, 1)
    return {"perplexity": math.exp(loss), "loss": loss, "tokens": int(total_tokens),
            "unk_share": total_unknown / max(total_words, 1)}


def unk_share(parser, golds: Sequence[GoldSentence], mode: str) -> float | None:
    """The share (0-1) of the tokens the model reads in ``mode`` that are outside its vocabulary
    (read as ``<unk>``); None when it reads none."""
    punctuation = "model" if mode == "words" else parser.default_punctuation
    read: list[str] = []
    for gold in golds:
        tokens = model_input(gold, mode)
        read.extend(tokens[index] for index in parser.model_positions(tokens, punctuation))
    return sum(not parser.knows(token) for token in read) / len(read) if read else None


# --- EVALB ------------------------------------------------------------------------------

# Unlabelled bracket scoring of the trees ``write_evalb_files`` writes: their root (TOP, the
# whole sentence) is not a bracket, every other node is, whatever its label; the statistics for
# sentences of at most 10 words are WSJ10's.
EVALB_PARAMETERS = """\
DEBUG 0
MAX_ERROR 10
CUTOFF_LEN 10
LABELED 0
DELETE_LABEL TOP
"""
EVALB_ROOT, EVALB_NODE, EVALB_PRETERMINAL = "TOP", "X", "T"


def evalb_tree(words: Sequence[str], brackets: Iterable[Span]) -> str:
    """One line EVALB reads: ``(TOP (X (T the) (T cat)) (T sat))``, a node ``X`` per bracket
    (nested spans over word positions, end exclusive) and every word under a preterminal."""
    brackets = sorted(set(brackets), key=lambda span: (span[0], -span[1]))
    opening: dict[int, int] = {}
    closing: dict[int, int] = {}
    for start, end in brackets:
        if not 0 <= start < end <= len(words):
            raise ValueError(f"bracket {(start, end)} out of range for {len(words)} words")
        opening[start] = opening.get(start, 0) + 1
        closing[end] = closing.get(end, 0) + 1
    parts = []
    for position, word in enumerate(words):
        leaf = f"({EVALB_PRETERMINAL} {escape_token(word)})" + ")" * closing.get(position + 1, 0)
        parts.append(f"({EVALB_NODE} " * opening.get(position, 0) + leaf)
    return f"({EVALB_ROOT} " + " ".join(parts) + ")"


def write_evalb_files(
    folder: Path, golds: Sequence[GoldSentence], predictions: Sequence[Iterable[Span]], name: str = "predicted"
) -> dict[str, Path]:
    """Write ``gold.txt``, ``NAME.txt`` and ``unlabelled.prm`` into ``folder`` for
    ``evalb -p unlabelled.prm gold.txt NAME.txt``.

    Both tree files hold the words of each sentence only (the protocol's step 1: punctuation,
    symbols and traces removed) with the brackets this module scores: ``GoldSentence.brackets``
    and the predictions as ``sentence_brackets`` gives them, so EVALB's bracketing F-measure is
    the corpus F1 here and its ``len<=10`` figure the WSJ10 corpus F1.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold sentences")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"gold": folder / "gold.txt", "predicted": folder / f"{name}.txt", "parameters": folder / "unlabelled.prm"}
    paths["gold"].write_text("".join(evalb_tree(gold.words, gold.brackets) + "\n" for gold in golds))
    paths["predicted"].write_text(
        "".join(evalb_tree(gold.words, predicted) + "\n" for gold, predicted in zip(golds, predictions))
    )
    paths["parameters"].write_text(EVALB_PARAMETERS)
    return paths
