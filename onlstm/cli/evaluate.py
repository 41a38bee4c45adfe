"""``onlstm eval``: unsupervised parsing F1 of a checkpoint on .mrg gold trees, beside the baselines.

    onlstm eval --mode both                              # the bundled model on the dev split
    onlstm eval --checkpoint runs/cpu/best.safetensors --json
    onlstm eval --evalb out/evalb                        # also the files EVALB scores

The scoring is ``onlstm.training.evaluate`` (shared/EVALUATION.md); this module reads the
options, loads the model, prints and returns the exit status (0 done, 2 bad input).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..models.trees.decoders import decode_spans
from ..training.corpora import CorpusError, read_treebank
from ..training.evaluate import (
    DECODER_NAMES,
    MODES,
    baseline_report,
    evaluate_model,
    format_table,
    gold_files,
    model_input,
    parser_distances,
    prepare_gold_trees,
    read_perplexity,
    sentence_brackets,
    unk_share,
    write_evalb_files,
)


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm eval",
        description="Unsupervised parsing F1 of an ON-LSTM checkpoint, beside the baselines (shared/EVALUATION.md).",
    )
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the bundled model)")
    parser.add_argument(
        "--data", default=None, help="the ptb-sample folder (default: $ONLSTM_DATA or ../shared/data/ptb-sample)"
    )
    parser.add_argument("--split", default="dev", choices=("train", "dev"), help="split of ptb-sample (default dev)")
    parser.add_argument("--files", default=None, help="score every .mrg file of this folder instead of a split")
    parser.add_argument("--mode", default="words", choices=("words", "raw", "both"))
    parser.add_argument("--decoder", default="all", choices=("greedy", "split", "all"))
    parser.add_argument(
        "--right-branching-bias", type=float, action="append", metavar="STRENGTH",
        help="score the decoders with this right-branching prior (repeatable; default: 0 and the model's own)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--baselines-only", action="store_true", help="score the baselines only; load no model")
    parser.add_argument(
        "--evalb", type=Path, metavar="DIR",
        help="also write DIR/gold.txt, DIR/predicted-MODE.txt (the default layer; the decoder of --decoder, "
        "else the default) and DIR/unlabelled.prm for `evalb -p DIR/unlabelled.prm DIR/gold.txt DIR/predicted-words.txt`",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


def score_model(parser, golds: list, mode: str, decoders: list[str], batch_size: int, evalb: Path | None,
                biases: list[float] | None = None) -> dict:
    """One mode's report for a loaded parser: every layer, decoder and prior strength (``biases``;
    default: none and the model's), the baselines, the share of ``<unk>`` tokens, the model's
    perplexity over what it read, and (with ``evalb``) the EVALB files of the default row."""
    distances = parser_distances(parser, golds, mode, batch_size)
    default_bias = parser.default_right_branching_bias
    biases = biases or sorted({0.0, default_bias})
    report = evaluate_model(golds, lambda inputs: distances, mode=mode, decoders=decoders,
                            right_branching_biases=biases)
    report["default"] = {"layer": parser.default_layer, "decoder": parser.default_decoder,
                         "right_branching_bias": default_bias}
    report["unk_share"] = unk_share(parser, golds, mode)
    # as a parse reads them (a words-only model drops the marks): what the service's perplexity means
    read = read_perplexity(parser, [model_input(gold, mode) for gold in golds], parser.default_punctuation, batch_size)
    report["perplexity"], report["perplexity_tokens"] = read["perplexity"], read["tokens"]
    if evalb is not None:
        layer = parser.default_layer
        decoder = decoders[0] if len(decoders) == 1 else parser.default_decoder
        bias = default_bias if default_bias in biases else biases[0]
        predictions = [
            sentence_brackets(gold, decode_spans(per_layer[layer], decoder, bias), mode)
            for gold, per_layer in zip(golds, distances)
        ]
        paths = write_evalb_files(evalb, golds, predictions, name=f"predicted-{mode}")
        row = next(row for row in report["model"]
                   if row["layer"] == layer and row["decoder"] == decoder and row["right_branching_bias"] == bias)
        report["evalb"] = {
            "layer": layer,
            "decoder": decoder,
            "right_branching_bias": bias,
            "corpus_f1": row["corpus_f1"],
            "wsj10_corpus_f1": row["wsj10_corpus_f1"],
            **{name: str(path) for name, path in paths.items()},
        }
    return report


def print_report(output: dict, modes: list[str], baselines_only: bool) -> None:
    source = output["data"] + (f" ({output['split']})" if output["split"] else "")
    print(f"gold: {source}")
    if not baselines_only:
        print(f"checkpoint: {output['checkpoint'] or 'bundled default'}")
    for mode in modes:
        report = output["reports"][mode]
        print()
        print(format_table(report))
        if report.get("unk_share") is not None:
            print(f"<unk>: {100 * report['unk_share']:.1f}% of the tokens the model read are outside its vocabulary")
        if report.get("perplexity") is not None:
            print(f"perplexity: {report['perplexity']:.1f} over the {report['perplexity_tokens']:,} tokens the model "
                  "read (<eos> included), a fresh state per sentence")
        if "evalb" in report:
            evalb = report["evalb"]
            print(
                f"EVALB files (layer {evalb['layer']} {evalb['decoder']}, right-branching prior "
                f"{evalb['right_branching_bias']:g}: corpus F1 {evalb['corpus_f1']:.2f}, "
                f"WSJ10 corpus F1 {evalb['wsj10_corpus_f1']:.2f}): "
                f"evalb -p {evalb['parameters']} {evalb['gold']} {evalb['predicted']}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_argparser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.evalb and args.baselines_only:
        print("error: --evalb writes a model's trees: leave out --baselines-only", file=sys.stderr)
        return 2
    if args.evalb and args.evalb.exists() and not args.evalb.is_dir():
        print(f"error: --evalb {args.evalb} is a file; give a folder (new or existing) for the EVALB files",
              file=sys.stderr)
        return 2
    try:
        files = gold_files(args.files, args.data, args.split)
        golds = prepare_gold_trees(read_treebank(files))
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    modes = list(MODES) if args.mode == "both" else [args.mode]
    decoders = list(DECODER_NAMES) if args.decoder == "all" else [args.decoder]
    output: dict = {
        "data": str(Path(args.files) if args.files else files[0].parent),
        "split": None if args.files else args.split,
        "checkpoint": args.checkpoint,
        "reports": {},
    }
    if args.baselines_only:
        output["reports"] = {mode: baseline_report(golds, mode) for mode in modes}
    else:
        from ..models.checkpoint import CheckpointError
        from ..models.options import OptionError
        from ..models.parser import Parser  # lazy: the baselines need no model code

        try:
            parser = Parser.load(args.checkpoint)
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        output["default"] = {"layer": parser.default_layer, "decoder": parser.default_decoder,
                             "right_branching_bias": parser.default_right_branching_bias}
        try:
            for bias in args.right_branching_bias or []:
                parser.resolve(right_branching_bias=bias)
        except OptionError as error:
            print(f"error: {error.message_for('--right-branching-bias')}", file=sys.stderr)
            return 2
        for mode in modes:
            output["reports"][mode] = score_model(parser, golds, mode, decoders, args.batch_size, args.evalb,
                                                  args.right_branching_bias)
    if args.json:
        json.dump(output, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(output, modes, args.baselines_only)
    return 0
