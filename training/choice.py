"""Choosing a release's checkpoint, layer and prior without reading a gold tree, and the
oracle that does read them, side by side.

A user of a language without a treebank has held-out text and nothing else, so the rule
(``choose_without_trees``) reads only the run's releases and held-out sentences:

* **checkpoint**: the lowest held-out perplexity (what the run already selects on);
* **layer**: the bottom layer for a character reader (``unit`` ``characters``; below); else the
  middle layer (``n_layers // 2``: layer 1 of 3), the English model's layer,
  carried unchanged like the strength.  The first rule chose the layer whose trees on the
  held-out sentences agree most with the same layer's trees at half the step (structure that
  stays while the model learns); it chose the top layer in four languages of five, and on
  English, whose trees say what it should have chosen, that gave 25.4 dev F1 where layer 1
  gives 54.1 (``training/sweeps/results/languages-*-cpu.json``).  The agreement is still
  measured and recorded (``agreement_per_layer``), no longer used;
* **prior sign**: the direction the chosen layer's own trees lean: the mean over held-out
  sentences of F1 against the right-branching tree minus F1 against the left-branching one;
* **prior strength**: ``PRIOR_STRENGTH`` (0.4) whatever the language, the strength chosen on
  English dev trees for the English model, carried unchanged: no tree of the language is read;
* **a character reader** (``unit`` ``characters``): the distances of its **input** master gate at
  its **bottom** layer, the **split** decoder, no prior (``CHARACTER_READER``).  Adopted in 0.15.0 by
  a test written before its runs existed, on a character reader trained 3,000 steps
  (``training/sweeps/results/preregistration-chinese-characters-input-gate.md``: fresh seeds of the
  product's own path, ``chinese-characters-input-gate-cpu.json``); it replaced 0.14.0's top layer
  of the forget gate, greedy (``preregistration-chinese-characters-top-layer.md``), which fell to
  23.5 on later fresh seeds and to 22.2 trained longer (``preregistration-chinese-characters-longer.md``).
  An earlier test of no prior at the middle layer passed on text that carried fragments of Sinica's
  annotation and was withdrawn (``preregistration-chinese-characters-no-prior.md``);
* **punctuation first** (``ParseOptions.punctuation_first``) for a release that reads words only
  (punctuation ``attach``): the text's marks are split at first, then the distances decide.
  Adopted in 0.13.0 by a test written before its runs existed
  (``training/sweeps/results/preregistration-punctuation-first-default.md``: fresh seeds of es,
  pt, nl and the English recipe, ``punctuation-first-default-cpu.json``).

``oracle_rows`` scores the same releases on dev gold trees: the best checkpoint, layer and
prior strength there (supervision, reported beside the choice, never used by it).

    python -m onlstm.training.choice runs/es-s1 runs/es-s2 runs/es-s3 --language es \\
        --treebank ../shared/data/multilingual/es-cess --json es.json

prints, per run and as mean and spread over the runs, the four baselines, the tree-free
choice, the model alone at that choice, the oracle and the held-out perplexity.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.checkpoint import load_release, save_release
from ..models.options import DECODER_NAMES, GATE_NAMES
from ..models.parser import Parser
from ..models.trees.decoders import decode_spans, left_branching_spans, right_branching_spans
from .evaluate import (
    GoldSentence,
    evaluate_baselines,
    model_input,
    predicted_brackets,
    score_spans,
    with_punctuation_first,
)

logger = logging.getLogger(__name__)

PRIOR_STRENGTH = 0.4
ORACLE_STRENGTHS = (-0.8, -0.4, 0.0, 0.4, 0.8)
RULE = ("checkpoint: lowest held-out perplexity; layer: the middle one (English's); prior: sign of the layer's own "
        "lean (right minus left), strength 0.4 (English's); a character reader: the input gate's bottom layer, the "
        "split decoder, no prior; punctuation first where the release reads words only")


@dataclass(frozen=True)
class Decoding:
    """What the rule decodes a release with besides its prior: a master gate's distances, a layer
    (None: the middle one) and a decoder."""

    gate: str
    decoder: str
    layer: int | None


CHARACTER_READER = Decoding(gate="input", decoder="split", layer=0)  # a release of unit "characters"
WORD_READER = Decoding(gate="forget", decoder="greedy", layer=None)  # every other release


def gate_and_decoder(choice: dict) -> tuple[str, str]:
    """The gate and decoder a choice decodes with (a choice made before they were recorded: the word reader's)."""
    return choice.get("gate", WORD_READER.gate), choice.get("decoder", WORD_READER.decoder)
_STEP = re.compile(r"release-step(\d+)\.safetensors$")


@dataclass(frozen=True)
class RunRelease:
    step: int
    path: Path
    perplexity: float


def run_releases(run: Path) -> list[RunRelease]:
    """The releases a run kept (``release-step{N}.safetensors``, ``keep_releases``), by step; a
    run that kept none gives its ``best`` and ``last`` releases."""
    paths = [path for path in run.glob("release-step*.safetensors") if _STEP.search(path.name)]
    if not paths:
        paths = [path for path in (run / "best.safetensors", run / "last.safetensors") if path.is_file()]
    releases = []
    for path in paths:
        metadata = load_release(path).metadata
        releases.append(RunRelease(int(metadata["steps"]), path, float(metadata["dev_perplexity"])))
    return sorted(set(releases), key=lambda release: release.step)


def trees_per_layer(parser: Parser, sentences: Sequence[Sequence[str]], strength: float = 0.0) -> list[list[list]]:
    """Greedy spans ``[layer][sentence]`` of every sentence (words as given, read as the model reads them)."""
    return trees_from_distances(parser.layer_distances([list(sentence) for sentence in sentences], 64, "model"),
                                strength)


def trees_from_distances(distances: Sequence[Sequence[Sequence[float]]], strength: float = 0.0,
                         decoder: str = "greedy") -> list[list[list]]:
    """Spans ``[layer][sentence]`` by ``decoder`` from distances ``[sentence][layer][word]`` (``Parser.layer_distances``)."""
    n_layers = len(distances[0]) if distances else 0
    return [[decode_spans(layers[layer], decoder, strength) for layers in distances] for layer in range(n_layers)]


def _pair_f1(first: frozenset, second: frozenset) -> float | None:
    if not first and not second:
        return None
    return 200.0 * len(first & second) / (len(first) + len(second))


def agreement(first: Sequence, second: Sequence, lengths: Sequence[int]) -> float:
    """Mean sentence F1 (brackets of two or more words, not the whole sentence) between two sets of trees."""
    scores = [_pair_f1(predicted_brackets(a, n), predicted_brackets(b, n)) for a, b, n in zip(first, second, lengths)]
    kept = [score for score in scores if score is not None]
    return statistics.fmean(kept) if kept else 0.0


def lean(trees: Sequence, lengths: Sequence[int]) -> float:
    """How far trees lean right: mean F1 against the right-branching tree minus against the left-branching one."""
    return (agreement(trees, [right_branching_spans(n) for n in lengths], lengths)
            - agreement(trees, [left_branching_spans(n) for n in lengths], lengths))


def choose_without_trees(releases: Sequence[RunRelease], heldout: Sequence[Sequence[str]]) -> dict:
    """The tree-free choice of the module doc over one run's releases, with the figures it rests on."""
    best = min(releases, key=lambda release: release.perplexity)
    earlier = [release for release in releases if release.step < best.step]
    lengths = [len(sentence) for sentence in heldout]
    chosen_parser = Parser.load(best.path)
    chosen_trees = trees_per_layer(chosen_parser, heldout)
    n_layers = len(chosen_trees)
    if earlier:
        reference = min(earlier, key=lambda release: abs(release.step - best.step / 2))
        reference_trees = trees_per_layer(Parser.load(reference.path), heldout)
        agreements = [agreement(chosen_trees[layer], reference_trees[layer], lengths) for layer in range(n_layers)]
    else:  # one evaluation: nothing to compare with
        reference, agreements = None, []
    characters = chosen_parser.unit == "characters"
    decoding = CHARACTER_READER if characters else WORD_READER
    layer = n_layers // 2 if decoding.layer is None else decoding.layer
    leans = [lean(chosen_trees[index], lengths) for index in range(n_layers)]
    sign = 1.0 if leans[layer] >= 0 else -1.0
    strength = 0.0 if characters else PRIOR_STRENGTH
    return {
        "rule": RULE,
        "checkpoint": best.path.name,
        "checkpoint_step": best.step,
        "heldout_perplexity": best.perplexity,
        "compared_with_step": reference.step if reference else None,
        "agreement_per_layer": [round(value, 2) for value in agreements],
        "lean_per_layer": [round(value, 2) for value in leans],
        "layer": layer,
        "gate": decoding.gate,
        "decoder": decoding.decoder,
        "right_branching_bias": sign * strength if strength else 0.0,
        "punctuation_first": reads_words_only(chosen_parser),
        "unit": chosen_parser.unit,
        "heldout_sentences": len(heldout),
    }


def reads_words_only(parser: Parser) -> bool:
    """Whether the release keeps marks out of the model (punctuation ``attach``): where the text's
    marks stand between its words, which ``punctuation_first`` splits at, is then known apart from the
    model's distances."""
    return parser.default_punctuation == "attach"


def stamp_choice(path: Path, choice: dict, dtype: torch.dtype) -> None:
    """Rewrite the release at ``path`` (the chosen checkpoint's weights) with the choice as its defaults."""
    release = load_release(path)
    gate, decoder = gate_and_decoder(choice)
    metadata = {**release.metadata, "default_layer": choice["layer"], "default_gate": gate, "default_decoder": decoder,
                "default_right_branching_bias": choice["right_branching_bias"],
                "default_punctuation_first": bool(choice.get("punctuation_first", False)),
                "choice": {key: value for key, value in choice.items() if key != "oracle_rows"}}
    if "oracle_rows" in choice:
        metadata["oracle"] = choice["oracle_rows"]
    save_release(path, release.model, release.vocab, metadata, dtype)


def dev_distances(parser: Parser, golds: Sequence[GoldSentence], gate: str | None = None) -> list:
    """The release's distances ``[sentence][layer][word]`` of the dev words, from ``gate`` (None: the model's)."""
    return parser.layer_distances([model_input(gold, "words") for gold in golds], 64, "model", gate)


def dev_scores(parser: Parser, golds: Sequence[GoldSentence], strengths: Sequence[float],
               distances: list | None = None, punctuation_first: bool = False, decoder: str = "greedy") -> dict:
    """Sentence F1 ``{(layer, strength): F1}`` of a release on dev gold trees, words only, from the
    model's own gate (``distances``: ``dev_distances`` read already, of any gate), split at the text's
    marks first with ``punctuation_first``, decoded by ``decoder``."""
    distances = dev_distances(parser, golds) if distances is None else distances
    if punctuation_first:
        distances = with_punctuation_first(distances, golds)
    trees = {strength: trees_from_distances(distances, strength, decoder) for strength in strengths}
    # layer-major order, as the oracle's tie-break (the first maximum) has always read it
    return {(layer, strength): score_spans(golds, trees[strength][layer], "words")["sentence_f1"]
            for layer in range(len(distances[0])) for strength in strengths}


def every_option_oracle(parser: Parser, golds: Sequence[GoldSentence],
                        read: dict[str, list] | None = None) -> tuple[float, dict]:
    """The best dev F1 of one release over every option a user can set (gate, layer, decoder, prior
    strength in ``ORACLE_STRENGTHS``, punctuation first where the release reads words only), words
    only, and where it is: supervision, as the oracle.  ``read``: ``dev_distances`` of some gates read
    already, by gate."""
    candidates = []
    read_per_gate = {gate: (read or {}).get(gate) or dev_distances(parser, golds, gate) for gate in GATE_NAMES}
    for punctuation_first in (False, True) if reads_words_only(parser) else (False,):
        for gate in GATE_NAMES:
            distances = read_per_gate[gate]
            if punctuation_first:
                distances = with_punctuation_first(distances, golds)
            for layer in range(len(distances[0])):
                for decoder in DECODER_NAMES:
                    for strength in ORACLE_STRENGTHS:
                        trees = [decode_spans(values[layer], decoder, strength) for values in distances]
                        candidates.append((score_spans(golds, trees, "words")["sentence_f1"], gate, layer, decoder,
                                           strength, punctuation_first))
    # a tie goes to the first in the order searched: without punctuation first, forget before input, lower
    # layers, greedy, strength from -0.8 up
    f1, gate, layer, decoder, strength, punctuation_first = max(candidates, key=lambda candidate: candidate[0])
    return f1, {"gate": gate, "layer": layer, "decoder": decoder, "right_branching_bias": strength,
                "punctuation_first": punctuation_first}


def oracle_rows(releases: Sequence[RunRelease], choice: dict, golds: Sequence[GoldSentence]) -> dict:
    """The choice scored on dev trees (its gate and decoder), the model alone at it, and the oracle:
    the best checkpoint, layer and strength on the same trees (greedy, forget gate, punctuation first
    as chosen), and at the chosen checkpoint the best over every option (``every_option_oracle``)."""
    # the run deleted the releases it kept for the choice (keep_releases off): best.safetensors holds the chosen weights
    chosen = next((release for release in releases if release.path.name == choice["checkpoint"]), None) \
        or next(release for release in releases if release.step == choice["checkpoint_step"])
    chosen_parser = Parser.load(chosen.path)
    gate, decoder = gate_and_decoder(choice)
    oracle_gate, oracle_decoder = WORD_READER.gate, WORD_READER.decoder
    read = {name: dev_distances(chosen_parser, golds, name) for name in {gate, oracle_gate}}  # each gate read once
    first = bool(choice.get("punctuation_first", False))
    chosen_scores = dev_scores(chosen_parser, golds, (*ORACLE_STRENGTHS, choice["right_branching_bias"]),
                               read[gate], first, decoder)
    if (gate, decoder) == (oracle_gate, oracle_decoder):
        oracle_scores_at_chosen = chosen_scores
    else:
        oracle_scores_at_chosen = dev_scores(chosen_parser, golds, ORACLE_STRENGTHS, read[oracle_gate], first)
    candidates = []
    for release in releases:
        if release is chosen:
            scores = oracle_scores_at_chosen
        else:
            parser = Parser.load(release.path)
            scores = dev_scores(parser, golds, ORACLE_STRENGTHS, dev_distances(parser, golds, oracle_gate), first)
        (best_layer, best_strength), value = max(scores.items(), key=lambda item: item[1])
        candidates.append((value, release.step, best_layer, best_strength))
    oracle_f1, oracle_step, oracle_layer, oracle_strength = max(candidates)
    layer = choice["layer"]
    every_option_f1, every_option = every_option_oracle(chosen_parser, golds, read)
    return {
        "tree_free_f1": chosen_scores[(layer, choice["right_branching_bias"])],
        "model_alone_f1": chosen_scores[(layer, 0.0)],
        # the choice's gate and decoder at each layer
        "chosen_checkpoint_per_layer_without_prior": [value for (_, strength), value in chosen_scores.items()
                                                       if strength == 0.0],
        "oracle_f1": oracle_f1,
        "oracle": {"checkpoint_step": oracle_step, "layer": oracle_layer, "right_branching_bias": oracle_strength},
        "oracle_at_chosen_checkpoint_f1": max(oracle_scores_at_chosen.values()),
        # at the chosen checkpoint, the options added since the oracle above was defined too (the split
        # decoder, the input gate)
        "oracle_every_option_f1": every_option_f1,
        "oracle_every_option": every_option,
    }


def run_heldout(run: Path) -> list[list[str]]:
    """The sentences the run held out of its training text (its config, read again)."""
    from .config import TrainConfig
    from .inputs import hold_out, load_training_text

    config = TrainConfig.from_saved(json.loads((run / "config.json").read_text()))
    if config.dev_corpus:
        raise ValueError(f"{run} was selected on dev trees ({config.dev_corpus}): it held no sentences out")
    return hold_out(config, load_training_text(config))[1]


def report(runs: Sequence[Path], golds: Sequence[GoldSentence]) -> dict:
    """Per run: the tree-free choice and its oracle rows; over the runs: mean and spread; the baselines."""
    rows = []
    for run in runs:
        releases = run_releases(run)
        written = run / "choice.json"  # what the run chose at its end (training reads the held-out text once)
        choice = json.loads(written.read_text()) if written.is_file() else choose_without_trees(releases, run_heldout(run))
        choice.pop("oracle_rows", None)
        if "punctuation_first" not in choice:  # chosen before the rule had it: the rest of the choice stands
            choice.update(punctuation_first=reads_words_only(Parser.load(run / "best.safetensors")), rule=RULE)
        rows.append({"run": str(run), **choice, **(oracle_rows(releases, choice, golds) if golds else {})})
        logger.info("%s: %s", run, json.dumps(rows[-1]))
    summary = {}
    for key in ("tree_free_f1", "model_alone_f1", "oracle_f1", "oracle_every_option_f1", "heldout_perplexity"):
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            summary[key] = {"mean": statistics.fmean(values), "spread": max(values) - min(values),
                            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}
    baselines = {row["name"]: row["sentence_f1"] for row in evaluate_baselines(list(golds), "words")} if golds else {}
    return {"rule": RULE, "runs": rows, "summary": summary, "baselines": baselines, "dev_sentences": len(golds)}


def choice_f1(parser: Parser, golds: Sequence[GoldSentence], choice: dict) -> float:
    """Sentence F1 on ``golds`` of one release decoded as ``choice`` says (gate, layer, decoder, prior,
    punctuation first)."""
    gate, decoder = gate_and_decoder(choice)
    key = (choice["layer"], choice["right_branching_bias"])
    return dev_scores(parser, golds, (key[1],), dev_distances(parser, golds, gate),
                      bool(choice.get("punctuation_first", False)), decoder)[key]


def simplified_rows(runs: Sequence[Path], golds: Sequence[GoldSentence]) -> list[dict]:
    """Each run's tree-free choice (from its ``choice.json``) scored on the dev trees as written
    (Sinica: Traditional characters) and on the same trees with every word in Simplified ones."""
    from dataclasses import replace

    from ..models.text.chinese import to_simplified

    converted = [replace(gold, tokens=tuple(map(to_simplified, gold.tokens)), words=tuple(map(to_simplified, gold.words)))
                 for gold in golds]
    rows = []
    for run in runs:
        choice = json.loads((run / "choice.json").read_text())
        parser = Parser.load(run / "best.safetensors")
        rows.append({"run": str(run), "traditional_f1": choice_f1(parser, golds, choice),
                     "simplified_f1": choice_f1(parser, converted, choice),
                     "words_changed": sum(a != b for gold, other in zip(golds, converted)
                                          for a, b in zip(gold.words, other.words))})
    return rows


def decoding_note(choice: dict) -> str:
    """What a choice decodes with besides the layer, where it is not the word reader's (forget gate, greedy)."""
    gate, decoder = gate_and_decoder(choice)
    return "" if (gate, decoder) == (WORD_READER.gate, WORD_READER.decoder) else f" ({gate} gate, {decoder})"


def format_report(result: dict) -> str:
    lines = ["| run | checkpoint | layer | prior | tree-free F1 | model alone | oracle F1 (where) "
             "| every option at the checkpoint (where) | held-out ppl |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["runs"]:
        oracle = row.get("oracle", {})
        every = row.get("oracle_every_option", {})
        lines.append(
            f"| {row['run']} | step {row['checkpoint_step']} | {row['layer']}{decoding_note(row)} | {row['right_branching_bias']:+.1f}"
            f"{', punctuation first' if row.get('punctuation_first') else ''} "
            f"| {row.get('tree_free_f1', float('nan')):.1f} | {row.get('model_alone_f1', float('nan')):.1f} "
            f"| {row.get('oracle_f1', float('nan')):.1f} (step {oracle.get('checkpoint_step')}, layer "
            f"{oracle.get('layer')}, prior {oracle.get('right_branching_bias')}) "
            f"| {row.get('oracle_every_option_f1', float('nan')):.1f} ({every.get('gate')} gate, layer {every.get('layer')}, "
            f"{every.get('decoder')}, prior {every.get('right_branching_bias')}"
            f"{', punctuation first' if every.get('punctuation_first') else ''}) | {row['heldout_perplexity']:.1f} |"
        )
    summary = "; ".join(f"{key} {value['mean']:.1f} (spread {value['spread']:.1f})"
                        for key, value in result["summary"].items())
    baselines = ", ".join(f"{name} {value:.1f}" for name, value in result["baselines"].items())
    return "\n".join([*lines, f"mean over {len(result['runs'])} runs: {summary}", f"baselines: {baselines}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onlstm.training.choice", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (--out of onlstm train)")
    parser.add_argument("--language", required=True, help="en, zh, es, pt or nl")
    parser.add_argument("--treebank", help="the language's treebank folder: adds the dev oracle rows")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--simplified", action="store_true",
                        help="Chinese: also score each choice on the dev trees written in Simplified characters")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    golds: list[GoldSentence] = []
    if arguments.treebank:
        from .treebanks import read_gold

        golds = list(read_gold(arguments.language, arguments.treebank, "dev"))
    result = {"language": arguments.language, **report(arguments.runs, golds)}
    if arguments.simplified and golds:
        result["simplified"] = simplified_rows(arguments.runs, golds)
    print(format_report(result))
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
