"""``onlstm parse``: parse a file (or stdin) offline and write trees.

The command turns its flags into a call of ``onlstm.models.predict.predict`` (reading,
chunking, worker processes, ordering and the output formats live there, callable from
Python) and its errors into one-line messages and exit statuses: 0 done (also when the
reader of stdout stops early), 1 the model, the input's encoding, a worker or the output
failed, 2 a bad flag or input the flags cannot parse.  The model is ``--checkpoint``, else
``$ONLSTM_CHECKPOINT``, else the bundled model of ``--language`` (default en); with a
checkpoint, ``--language`` must be the release's own (it is then checked, not chosen).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool

from ..models.checkpoint import CheckpointError
from ..models.device import DeviceError, check_device
from ..models.languages import LanguageError, bundled_languages
from ..models.options import GATE_NAMES, PUNCTUATION_MODES, OptionError, ParseOptions
from ..models.parser import Parser
from ..models.predict import (
    DEFAULT_MAX_TOKENS,
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    ChunkRunner,
    InputEncodingError,
    InputError,
    PredictSummary,
    predict,
)
from ..models.trees.decoders import DECODERS


class UsageError(Exception):
    """A flag the command refuses (exit status 2); the message names it."""


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm parse",
        description="Parse sentences with an ON-LSTM model and write unlabelled binary trees.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  onlstm parse article.txt -o trees.jsonl\n"
        "  echo 'The cat sat on the mat. The dog ran.' | onlstm parse --format pretty\n"
        "  onlstm parse one-sentence-per-line.txt --input-format lines --format ptb\n"
        "  onlstm parse artículo.txt --language es -o trees.jsonl      # the bundled Spanish model\n"
        "  onlstm parse tagged.txt --input-format tagged --format ptb --preterminals   # trees EVALB reads",
    )
    parser.add_argument("input", nargs="?", default="-", help="input file, '-' for stdin (default)")
    parser.add_argument("-o", "--output", default="-", help="output file, '-' for stdout (default)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="jsonl", help="output format (default jsonl)")
    parser.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="text",
        help="text: running text, split into sentences (default); lines: one sentence per line; "
        "tokens: one pre-tokenized sentence per line, tokens separated by spaces; tagged: tokens as word/TAG",
    )
    parser.add_argument("--tag-separator", default=None, help="tagged input: between word and tag (default /)")
    parser.add_argument("--preterminals", action="store_true",
                        help="ptb: every word under a preterminal, (T word) or its own tag, as EVALB expects")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help=f"refuse a sentence of more tokens (default {DEFAULT_MAX_TOKENS}, the service's limit; 0: none)")
    parser.add_argument("--checkpoint", default=os.environ.get("ONLSTM_CHECKPOINT") or None,
                        help="release checkpoint (default: $ONLSTM_CHECKPOINT, else the bundled model)")
    parser.add_argument("--language", default=None, metavar="LANG",
                        help=f"ISO 639-1 code of the text (bundled: {', '.join(bundled_languages())}): the bundled model of "
                        "that language splits, tokenizes and parses it (default en); with --checkpoint, the release's "
                        "language (checked; any ISO 639-1 code, for a model trained on one's own text)")
    parser.add_argument("--layer", type=int, default=None, help="0-based layer whose distances build the trees")
    parser.add_argument("--decoder", choices=sorted(DECODERS), default=None, help="tree decoder (default: the model's)")
    parser.add_argument("--gate", choices=GATE_NAMES, default=None,
                        help="master gate whose distances build the trees: forget (the paper's) or input (default: the model's)")
    parser.add_argument("--punctuation", choices=PUNCTUATION_MODES, default=None, help="punctuation handling (default: the model's)")
    parser.add_argument("--right-branching-bias", type=float, default=None, metavar="STRENGTH",
                        help="the decoder's right-branching prior, d_t - STRENGTH * t / n (0: the model's own distances; "
                        "default: the model's)")
    parser.add_argument("--punctuation-first", action=argparse.BooleanOptionalAction, default=None,
                        help="split first where the text has punctuation between two words, then by the distances "
                        "(default: the model's: on for the bundled es, pt, nl and zh models, off for en; "
                        "--no-punctuation-first turns a model's default off)")
    parser.add_argument("--all-layers", action="store_true", help="jsonl: add every layer's distances and tree")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per model batch (default 64)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (per worker; default: torch's choice, or cores / workers)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="parser processes; output stays in input order (default 1: this process)"
    )
    parser.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="parse on Ray actors (the `ray` extra): a local Ray, or the cluster at ADDRESS (auto, HOST:6379); "
        "--workers N > 1 sets the number of actors (default: one per GPU, else per --threads CPUs)",
    )
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a terminal")
    return parser


def _check_arguments(arguments: argparse.Namespace) -> None:
    for flag, value, least in (("--batch-size", arguments.batch_size, 1), ("--workers", arguments.workers, 1),
                               ("--threads", arguments.threads, 1)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be at least {least}")
    if arguments.preterminals and arguments.format != "ptb":
        raise UsageError("--preterminals applies to --format ptb")
    if arguments.all_layers and arguments.format != "jsonl":
        raise UsageError(f"--all-layers applies to --format jsonl (--format {arguments.format} writes the tree of "
                         "one layer: choose it with --layer N)")
    if arguments.tag_separator is not None and arguments.input_format != "tagged":
        raise UsageError("--tag-separator applies to --input-format tagged (word/TAG tokens)")
    arguments.tag_separator = arguments.tag_separator or "/"
    if arguments.max_tokens < 0:
        raise UsageError("--max-tokens must be 0 (no limit) or more")
    try:
        arguments.device = check_device(arguments.device)
    except DeviceError as error:
        raise UsageError(f"--device: {error}") from None
    if arguments.input != "-" and not os.access(arguments.input, os.R_OK):
        reason = "no such file" if not os.path.exists(arguments.input) else "permission denied"
        raise UsageError(f"cannot read {arguments.input}: {reason}")


def _parse_options(arguments: argparse.Namespace, parser: Parser) -> ParseOptions:
    """The flags' ParseOptions, checked against the model (``OptionError`` names the flag)."""
    options = ParseOptions.of(layer=arguments.layer, decoder=arguments.decoder, gate=arguments.gate,
                              punctuation=arguments.punctuation,
                              right_branching_bias=arguments.right_branching_bias,
                              punctuation_first=arguments.punctuation_first,
                              all_layers=arguments.all_layers or None, language=arguments.language)
    parser.resolve(options)
    return options


def _runner(arguments: argparse.Namespace) -> ChunkRunner | None:
    if arguments.ray is None:
        return None
    from ..ray import chunk_runner

    return chunk_runner(arguments.ray, threads=arguments.threads or 1,
                        actors=arguments.workers if arguments.workers > 1 else None,
                        use_gpus=None if arguments.device == "cpu" else arguments.device.startswith("cuda"))


def _progress_bar(arguments: argparse.Namespace) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """(progress callback for predict, close) drawing a bar on stderr, or (None, no-op) when not wanted."""
    if not (arguments.progress or sys.stderr.isatty()):
        return None, lambda: None
    from tqdm import tqdm

    size = os.path.getsize(arguments.input) if arguments.input != "-" else None
    # on a terminal, small inputs finish before the bar's delay and never draw it; --progress always draws
    bar = tqdm(total=size, unit="B", unit_scale=True, desc="parsing", file=sys.stderr,
               delay=0 if arguments.progress else 1.0, leave=True)
    started = time.perf_counter()

    def update(sentences: int, read_bytes: int) -> None:
        bar.update(read_bytes - bar.n)
        rate = sentences / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix_str(f"{sentences} sentences, {rate:.0f} sentences/s", refresh=False)

    return update, bar.close


def _run(arguments: argparse.Namespace, parser: Parser, options: ParseOptions) -> PredictSummary:
    progress, close_progress = _progress_bar(arguments)
    try:
        return predict(parser, arguments.input, arguments.output, options, format=arguments.format,
                       preterminals=arguments.preterminals, input_format=arguments.input_format,
                       tag_separator=arguments.tag_separator, max_tokens=arguments.max_tokens,
                       batch_size=arguments.batch_size, workers=1 if arguments.ray is not None else arguments.workers,
                       threads=arguments.threads, runner=_runner(arguments), progress=progress)
    finally:
        close_progress()


def _report(summary: PredictSummary, arguments: argparse.Namespace) -> None:
    if summary.sentences == 0:
        print("warning: the input has no sentences", file=sys.stderr)
    if arguments.output != "-":
        print(f"onlstm parse: wrote {summary.sentences} {'sentence' if summary.sentences == 1 else 'sentences'} "
              f"({arguments.format}) to {arguments.output} in {summary.seconds:.1f} s", file=sys.stderr)


def _load(arguments: argparse.Namespace) -> Parser:
    if arguments.threads is not None:
        import torch

        torch.set_num_threads(arguments.threads)
    if arguments.language is not None:
        ParseOptions(language=arguments.language)  # a malformed code is named as a flag before any load
    parser = Parser.load(arguments.checkpoint, device=arguments.device, language=arguments.language)
    print(f"onlstm parse: model {parser.name} (version {parser.version}, language {parser.language})",
          file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_argument_parser().parse_args(argv)
    # a checkpoint from $ONLSTM_CHECKPOINT is one the user may not know is set: a refusal names it
    arguments.checkpoint_flag = arguments.checkpoint != (os.environ.get("ONLSTM_CHECKPOINT") or None)
    try:
        _check_arguments(arguments)
        parser = _load(arguments)
        summary = _run(arguments, parser, _parse_options(arguments, parser))
    except UsageError as error:
        return _fail(str(error), 2)
    except CheckpointError as error:
        hint = "" if arguments.checkpoint else "; pass --checkpoint PATH to use another model"
        return _fail(f"cannot load the model: {error}{hint}", 1)
    except OptionError as error:  # LanguageError included: --language names the flag
        if isinstance(error, LanguageError) and error.code == "language_mismatch" and not arguments.checkpoint_flag:
            return _fail(f"{error.message_for('--language')} ($ONLSTM_CHECKPOINT is {arguments.checkpoint})", 2)
        if isinstance(error, LanguageError) and error.code == "language_unavailable" and not arguments.checkpoint:
            return _fail(f"{error.message_for('--language')}; or pass --checkpoint PATH, a release of that language", 2)
        return _fail(error.message_for("--" + error.option.replace("_", "-")), 2)
    except InputEncodingError as error:
        return _fail(str(error), 1)
    except InputError as error:
        return _fail(str(error), 2)
    except BrokenProcessPool:
        return _fail("a parser worker process died (out of memory?); try fewer --workers", 1)
    except BrokenPipeError:
        # the reader (e.g. `| head`) has had enough; not an error, but stdout can no longer be flushed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        if error.filename is not None and error.filename == arguments.input:
            return _fail(f"cannot read {arguments.input}: {error.strerror}", 2)
        return _fail(f"cannot write {arguments.output}: {error.strerror}", 1)
    _report(summary, arguments)
    return 0


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
