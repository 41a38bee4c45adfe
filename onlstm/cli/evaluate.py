"""``onlstm eval``: unsupervised parsing F1 of a checkpoint on gold trees, beside the baselines.

    onlstm eval --mode both                              # the bundled model on the dev split
    onlstm eval --checkpoint runs/cpu/best.safetensors --json
    onlstm eval --evalb out/evalb                        # also the files EVALB scores
    onlstm eval --language nl --treebank ../shared/data/multilingual/nl-alpino
    onlstm eval --language es --treebank es-cess --checkpoint runs/es/best.safetensors

English reads PTB .mrg files; ``--language zh|es|pt|nl`` reads that language's treebank
(Sinica, CESS-ESP, Floresta, Alpino) with ``onlstm.training.treebanks.read_gold``, and any other
ISO 639-1 code a ``--treebank`` file or folder of trees in Penn bracketing (a treebank of one's
own, scored with a model of one's own: ``--checkpoint``).  The four
baselines are printed for every language; Alpino's discontinuous constituents are not
brackets, and how many were skipped is printed.  The model scored is ``--checkpoint`` (a
release of ``--language``: another language's is refused), else the bundled model of
``--language`` (``models.languages.bundled_languages()``); a language with no bundled model
and no ``--checkpoint`` gets the baselines, and a line saying so.

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

from ..models.languages import bundled_languages, language_name
from ..models.options import GATE_NAMES
from ..models.trees.decoders import decode_spans
from ..training.corpora import CorpusError, default_data_dir, read_treebank
from ..training.evaluate import (
    DECODER_NAMES,
    MODES,
    GoldSentence,
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
    with_punctuation_first,
    write_evalb_files,
)
from ..training.treebanks import TREEBANKS, TreebankError, data_folder, read_gold, treebank, treebank_folder


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm eval",
        description="Unsupervised parsing F1 of an ON-LSTM checkpoint, beside the baselines (shared/EVALUATION.md).",
    )
    parser.add_argument("--checkpoint", default=None,
                        help="model checkpoint, a release of --language (default: the bundled model of --language)")
    parser.add_argument(
        "--data", default=None,
        help="the shared data folder or ptb-sample (default: $ONLSTM_DATA or ../shared/data); for another "
        "--language, the folder holding multilingual/",
    )
    parser.add_argument("--split", default="dev", choices=("train", "dev"), help="split of ptb-sample (default dev)")
    parser.add_argument("--files", default=None, help="score every .mrg file of this folder instead of a split")
    parser.add_argument(
        "--language", default=None, metavar="LANG",
        help=f"the gold trees' language, any ISO 639-1 code (default en): {', '.join(TREEBANKS)} read their "
        "treebanks' own formats, every other language a file or folder of trees in Penn bracketing "
        f"(--treebank); bundled models: {', '.join(bundled_languages())}",
    )
    parser.add_argument(
        "--treebank", default=None, metavar="PATH",
        help="the treebank's folder or one of its files, in that language's format (en: a .mrg file, a folder "
        "of .mrg files or ptb-sample; zh: zh-sinica or parsed.dev; es: es-cess or a folder of its files; "
        "pt: pt-floresta or floresta.dev.ptb; nl: nl-alpino or alpino.dev.xml); a folder's bare name that is "
        "not here is looked for in --data ($ONLSTM_DATA) and its multilingual/",
    )
    parser.add_argument("--mode", default="words", choices=("words", "raw", "both"))
    parser.add_argument("--decoder", default="all", choices=("greedy", "split", "all"))
    parser.add_argument("--gate", default=None, choices=GATE_NAMES,
                        help="score the distances of this master gate (default: the model's, forget)")
    parser.add_argument(
        "--right-branching-bias", type=float, action="append", metavar="STRENGTH",
        help="score the decoders with this right-branching prior (repeatable; default: 0 and the model's own)",
    )
    parser.add_argument("--punctuation-first", action=argparse.BooleanOptionalAction, default=None,
                        help="words mode: split first where the text had punctuation between two words "
                        "(ParseOptions.punctuation_first), then by the distances (default: the model's, on for the "
                        "bundled es, pt, nl and zh models, off for en; raw mode's marks are tokens the model reads, so "
                        "never there)")
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
                biases: list[float] | None = None, gate: str | None = None, punctuation_first: bool = False) -> dict:
    """One mode's report for a loaded parser: every layer, decoder and prior strength (``biases``;
    default: none and the model's) on the master ``gate``'s distances (default: the model's), the
    baselines, the share of ``<unk>`` tokens, the model's perplexity over what it read, and (with
    ``evalb``) the EVALB files of the default row."""
    gate = gate or parser.default_gate
    distances = parser_distances(parser, golds, mode, batch_size, gate)
    if punctuation_first:  # words mode: the words after the text's marks are split first, as a parse does
        distances = with_punctuation_first(distances, golds)
    default_bias = parser.default_right_branching_bias
    biases = biases or sorted({0.0, default_bias})
    report = evaluate_model(golds, lambda inputs: distances, mode=mode, decoders=decoders,
                            right_branching_biases=biases)
    report["default"] = {"layer": parser.default_layer, "decoder": parser.default_decoder,
                         "right_branching_bias": default_bias, "punctuation_first": punctuation_first}
    report["gate"] = gate
    report["unk_share"] = unk_share(parser, golds, mode)
    # as a parse reads them (a words-only model drops the marks): what the service's perplexity means
    read = read_perplexity(parser, [model_input(gold, mode) for gold in golds], parser.default_punctuation, batch_size)
    report["perplexity"], report["perplexity_tokens"] = read["perplexity"], read["tokens"]
    report["unit"] = parser.unit  # what a perplexity is a mean over: words or characters
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


def report_header(output: dict, baselines_only: bool) -> list[str]:
    """The lines above the tables: the gold trees, the model, skipped constituents, the note."""
    source = output["data"] + (f" ({output['split']})" if output["split"] else "")
    language = output["language"]
    lines = [f"gold: {source}" if language == "en" else f"gold: {language}, {output['treebank']}: {source}"]
    if language == "nl" or output["skipped_discontinuous"]:
        lines.append(f"discontinuous constituents: {output['skipped_discontinuous']:,} skipped (their words are "
                     "not one run); the brackets scored are the continuous ones")
    if "note" in output:
        lines.append(output["note"])
    elif not baselines_only:
        lines.append(f"checkpoint: {output['checkpoint'] or 'the bundled ' + output['language'] + ' model'}")
    return lines


def print_report(output: dict, modes: list[str], baselines_only: bool) -> None:
    print("\n".join(report_header(output, baselines_only)))
    for mode in modes:
        report = output["reports"][mode]
        print()
        print(format_table(report))
        characters = report.get("unit") == "characters"
        if report.get("unk_share") is not None:
            print(f"<unk>: {100 * report['unk_share']:.1f}% of the "
                  f"{'words the model read have a character' if characters else 'tokens the model read are'} "
                  "outside its vocabulary")
        if report.get("perplexity") is not None:
            print(f"perplexity: {report['perplexity']:.1f} over the {report['perplexity_tokens']:,} "
                  f"{'characters' if characters else 'tokens'} the model read (<eos> included), a fresh state per "
                  "sentence")
        if "evalb" in report:
            evalb = report["evalb"]
            print(
                f"EVALB files (layer {evalb['layer']} {evalb['decoder']}, right-branching prior "
                f"{evalb['right_branching_bias']:g}: corpus F1 {evalb['corpus_f1']:.2f}, "
                f"WSJ10 corpus F1 {evalb['wsj10_corpus_f1']:.2f}): "
                f"evalb -p {evalb['parameters']} {evalb['gold']} {evalb['predicted']}"
            )


def no_model_note(language: str) -> str | None:
    """The line said when ``language`` has no bundled model; None when it has one."""
    if language in bundled_languages():
        return None
    return f"no model for {language} is bundled yet; baselines only (pass --checkpoint PATH to score a model)"


def option_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, one line naming the flag; None when nothing is.
    Normalises ``args.language`` (``ES`` -> ``es``; none given: ``en``, and ``args.language_given``
    False) and finds a ``--treebank`` named by its folder's name in the data folder."""
    args.language_given = args.language is not None
    try:
        args.language = treebank((args.language or "en").lower()).language
    except TreebankError as error:
        return f"--language: {error}"
    if args.files and args.treebank:
        return "--treebank: give --files or --treebank, not both"
    if args.files and args.language != "en":
        return f"--files: reads PTB .mrg files (en); give the {args.language} treebank with --treebank"
    if args.treebank and not Path(args.treebank).exists():
        found = _in_data_folder(args.treebank, args.data)
        if found is None:
            return (f"--treebank: {args.treebank}: no such file or folder here, nor in the data folder "
                    f"({args.data or default_data_dir()}; --data or ONLSTM_DATA)")
        args.treebank = str(found)
    if args.punctuation_first and args.mode != "words":
        return "--punctuation-first scores words mode only (--mode words): raw mode's marks are tokens it reads"
    if args.evalb and args.baselines_only:
        return "--evalb writes a model's trees: leave out --baselines-only"
    if args.evalb and no_model_note(args.language) and not args.checkpoint:
        return f"--evalb writes a model's trees: no model for {args.language} is bundled yet (pass --checkpoint PATH)"
    if args.evalb and args.evalb.exists() and not args.evalb.is_dir():
        return f"--evalb {args.evalb} is a file; give a folder (new or existing) for the EVALB files"
    return None


def _in_data_folder(name: str, data: str | None) -> Path | None:
    """A treebank folder given by its bare name (``es-cess``, ``ptb-sample``), in the data folder or its
    ``multilingual/``; None when it is not a bare name or not there."""
    if Path(name).name != name:
        return None
    return data_folder(name, Path(data) if data else default_data_dir())


def _mrg_path(path: str | None) -> bool:
    """An English ``--treebank`` read as ``--files`` reads: a file, or a folder of .mrg files
    other than ``ptb-sample`` (whose ``--split`` is read, as with ``--data``)."""
    if path is None:
        return False
    return Path(path).is_file() or (Path(path).name != "ptb-sample" and any(Path(path).glob("*.mrg")))


def read_golds(args: argparse.Namespace) -> tuple[list[GoldSentence], dict]:
    """The gold sentences the options name, and what the output says of them."""
    language, path = args.language, args.treebank
    if language == "en" and (args.files or not path or _mrg_path(path)):
        mrg = args.files or path
        files = gold_files(mrg, args.data, args.split)
        golds = prepare_gold_trees(read_treebank(files))
        data, split = (Path(mrg), None) if mrg else (files[0].parent, args.split)
    else:
        golds = read_gold(language, path or args.data, args.split)
        data = Path(path) if path else treebank_folder(language, args.data)
        split = None if data.is_file() or not treebank(language).folder else args.split
    described = {
        "language": language,
        "treebank": treebank(language).name,
        "data": str(data),
        "split": split,
        "n_words": sum(gold.n_words for gold in golds),
        "skipped_discontinuous": sum(getattr(gold, "skipped_discontinuous", 0) for gold in golds),
    }
    return golds, described


def gold_flag(args: argparse.Namespace) -> str:
    """The flag that named the gold trees, for an error reading them."""
    if args.treebank or args.files:
        return "--treebank" if args.treebank else "--files"
    return "--data" if args.data or args.language == "en" else "--treebank"


def score_checkpoint(args: argparse.Namespace, golds: list[GoldSentence], modes: list[str], decoders: list[str],
                     output: dict) -> int:
    """Load ``--checkpoint`` (or the bundled model) and fill ``output`` with each mode's report; the exit status."""
    from ..models.checkpoint import CheckpointError
    from ..models.languages import LanguageError
    from ..models.options import OptionError
    from ..models.parser import Parser  # lazy: the baselines need no model code

    try:
        parser = Parser.load(args.checkpoint, language=args.language)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except LanguageError as error:  # --checkpoint is a release of another language than --language
        if args.language_given or error.code != "language_mismatch":
            print(f"error: {error.message_for('--language')}", file=sys.stderr)
        else:
            found = error.available[0]
            print(f"error: --checkpoint {args.checkpoint} is a {language_name(found)} ({found}) release and the "
                  f"trees are English (no --language): pass --language {found} and its trees (--treebank PATH)",
                  file=sys.stderr)
        return 2
    output["default"] = {"layer": parser.default_layer, "decoder": parser.default_decoder,
                         "right_branching_bias": parser.default_right_branching_bias,
                         "punctuation_first": parser.default_punctuation_first}
    try:
        for bias in args.right_branching_bias or []:
            parser.resolve(right_branching_bias=bias)
    except OptionError as error:
        print(f"error: {error.message_for('--right-branching-bias')}", file=sys.stderr)
        return 2
    first = parser.default_punctuation_first if args.punctuation_first is None else args.punctuation_first
    for mode in modes:
        output["reports"][mode] = score_model(parser, golds, mode, decoders, args.batch_size, args.evalb,
                                              args.right_branching_bias, args.gate, first and mode == "words")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_argparser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    problem = option_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        golds, output = read_golds(args)
    except CorpusError as error:  # TreebankError included
        print(f"error: {gold_flag(args)}: {error}", file=sys.stderr)
        return 2
    if not golds:
        print(f"error: {gold_flag(args)}: no tree in {output['data']}: give trees in Penn bracketing "
              "(.mrg files) or the language's treebank", file=sys.stderr)
        return 2
    modes = list(MODES) if args.mode == "both" else [args.mode]
    decoders = list(DECODER_NAMES) if args.decoder == "all" else [args.decoder]
    output.update(checkpoint=args.checkpoint, reports={})
    note = None if args.baselines_only or args.checkpoint else no_model_note(args.language)
    if note:
        output["note"] = note
    baselines_only = args.baselines_only or note is not None
    if baselines_only:
        output["reports"] = {mode: baseline_report(golds, mode) for mode in modes}
    else:
        status = score_checkpoint(args, golds, modes, decoders, output)
        if status:
            return status
    if args.json:
        json.dump(output, sys.stdout, indent=2)
        sys.stdout.write("\n")
        if note:
            print(note, file=sys.stderr)
    else:
        print_report(output, modes, baselines_only)
    return 0
