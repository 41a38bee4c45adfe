"""Choose the strength of the decoders' right-branching prior on one half of dev, report the other.

    python -m onlstm.training.prior runs/s1/best.safetensors runs/s2/best.safetensors \
        --grid 0,0.2,0.3,0.4,0.5 --json prior.json

Every checkpoint's layer-``--layer`` distances (default: each checkpoint's own default layer)
are decoded greedily with each strength of ``--grid`` and scored on the two halves of the dev
sentences (file order, as training's ``dev_f1_per_layer_halves``).  The strength with the best
mean sentence F1 over the checkpoints on the choosing half is the choice; the other half's
figure beside it is what to expect on sentences that did not choose it.

    python -m onlstm.training.prior --stamp 0.4 runs/s1/last.safetensors --out model.safetensors

writes a copy of a release (the same weights) whose default strength is 0.4, with its dev
figures scored again as training scores them with that prior (``dev_f1_per_layer``,
``dev_f1``, ``default_layer``, ``dev_f1_per_layer_without_prior``): what the release would
carry had the run been trained with ``right_branching_bias=0.4``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .evaluate import evaluate_model, gold_files, parser_distances, prepare_gold_trees
from .text_files import CorpusError, read_treebank

logger = logging.getLogger(__name__)

DEFAULT_GRID = (0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8)


def half_scores(golds: list, distances: list, layer: int, grid: Sequence[float]) -> dict[float, dict[str, float]]:
    """Sentence F1 of layer ``layer``'s greedy trees per strength: ``{strength: {"first", "second", "all"}}``."""
    half = len(golds) // 2
    parts = {"first": (0, half), "second": (half, len(golds)), "all": (0, len(golds))}
    scores: dict[float, dict[str, float]] = {strength: {} for strength in grid}
    for part, (start, end) in parts.items():
        part_distances = distances[start:end]

        def given_distances(_: object, chosen: list = part_distances) -> list:  # (bound now, not at call time)
            return chosen

        report = evaluate_model(golds[start:end], given_distances, "words", ("greedy",), False, grid)
        for row in report["model"]:
            if row["layer"] == layer:
                scores[row["right_branching_bias"]][part] = row["sentence_f1"]
    return scores


def choose(table: dict[str, dict[float, dict[str, float]]], choose_on: str) -> dict:
    """The strength with the best mean F1 on half ``choose_on`` over the checkpoints of ``table``,
    with the means of every strength on each half."""
    strengths = list(next(iter(table.values())))
    means = {
        strength: {part: sum(scores[strength][part] for scores in table.values()) / len(table)
                   for part in ("first", "second", "all")}
        for strength in strengths
    }
    chosen = max(strengths, key=lambda strength: means[strength][choose_on])
    other = "second" if choose_on == "first" else "first"
    return {"chosen_on": choose_on, "strength": chosen, "mean_f1_chosen_half": means[chosen][choose_on],
            "mean_f1_other_half": means[chosen][other], "means": means}


def stamp_release(path: Path, strength: float, out: Path, data: str | None = None) -> dict:
    """Copy the release at ``path`` to ``out`` with ``strength`` as its default prior and its dev
    figures scored with it; returns the new metadata."""
    from safetensors.torch import load_file

    from ..models.checkpoint import load_release, save_release
    from .config import TrainConfig
    from .dev_evaluation import evaluate_dev
    from .inputs import load_dev_trees

    release = load_release(path)
    saved = dict(release.metadata.get("train_config") or {})
    config = TrainConfig.from_saved({**saved, "right_branching_bias": strength, "dev_max_sentences": 0,
                                     "data_dir": data or ""})
    evaluation = evaluate_dev(release.model, release.vocab, config, load_dev_trees(config))
    metadata = {**release.metadata, **{key: value for key, value in evaluation.items() if key.startswith("dev_")},
                "default_layer": evaluation["best_layer"], "default_right_branching_bias": strength,
                "train_config": {**saved, "right_branching_bias": strength} if saved else {}}
    stored_dtype = next(iter(load_file(str(path)).values())).dtype  # the weights go back as they were stored
    save_release(out, release.model, release.vocab, metadata, stored_dtype)
    return metadata


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m onlstm.training.prior", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="release checkpoints (.safetensors)")
    parser.add_argument("--grid", default=",".join(f"{value:g}" for value in DEFAULT_GRID),
                        help="comma-separated strengths to try (default %(default)s)")
    parser.add_argument("--choose-on", choices=("first", "second"), default="first", help="the half that chooses")
    parser.add_argument("--layer", type=int, default=None, help="layer to decode (default: each model's default)")
    parser.add_argument("--data", default=None, help="the data folder holding ptb-sample (default: $ONLSTM_DATA)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--stamp", type=float, default=None, metavar="STRENGTH",
                        help="instead: copy the one checkpoint to --out with this default strength (see above)")
    parser.add_argument("--out", type=Path, default=None, help="--stamp: the release to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_argument_parser().parse_args(argv)
    if arguments.stamp is not None:
        if len(arguments.checkpoints) != 1 or arguments.out is None:
            print("error: --stamp takes one checkpoint and --out PATH", file=sys.stderr)
            return 2
        metadata = stamp_release(Path(arguments.checkpoints[0]), arguments.stamp, arguments.out, arguments.data)
        print(f"{arguments.out}: default right_branching_bias {arguments.stamp:g}, dev F1 {metadata['dev_f1']:.1f} "
              f"(layer {metadata['default_layer']}; without the prior "
              f"{max(metadata.get('dev_f1_per_layer_without_prior') or [float('nan')]):.1f})")
        return 0
    try:
        grid = sorted({float(value) for value in arguments.grid.split(",") if value.strip()})
    except ValueError:
        print(f"error: --grid takes numbers separated by commas, got {arguments.grid!r}", file=sys.stderr)
        return 2
    try:
        golds = prepare_gold_trees(read_treebank(gold_files(data=arguments.data)))
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from ..models.parser import Parser  # lazy: --help needs no torch

    table = {}
    for path in arguments.checkpoints:
        parser = Parser.load(path)
        layer = parser.default_layer if arguments.layer is None else arguments.layer
        table[path] = half_scores(golds, parser_distances(parser, golds, "words"), layer, grid)
        row = "  ".join(f"{strength:g}: {scores['first']:.1f}/{scores['second']:.1f}"
                        for strength, scores in table[path].items())
        print(f"{path} (layer {layer}; first/second half)  {row}")
    result = choose(table, arguments.choose_on)
    for strength, means in result["means"].items():
        print(f"strength {strength:g}: mean sentence F1 {means['first']:.2f} (first half) {means['second']:.2f} "
              f"(second half) {means['all']:.2f} (all {len(golds)})")
    print(f"chosen on the {result['chosen_on']} half: {result['strength']:g} ({result['mean_f1_chosen_half']:.2f} "
          f"there, {result['mean_f1_other_half']:.2f} on the other half)")
    if arguments.json:
        arguments.json.write_text(json.dumps({"checkpoints": table, **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
