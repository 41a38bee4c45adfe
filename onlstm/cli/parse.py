"""``onlstm parse``: parse a file (or stdin) offline and write trees.

Input (``--input-format``):
  * ``text`` (default): running text, split into sentences (paragraphs, separated by blank
    lines, are read one at a time); offsets count characters from the start of the input;
  * ``lines``: one raw sentence per line, tokenized here;
  * ``tokens``: one pre-tokenized sentence per line, tokens separated by whitespace;
  * ``tagged``: like ``tokens``, each token ``word/TAG`` (``--tag-separator`` to change
    ``/``); the tags become the preterminals of ``--format ptb --preterminals``.
Blank lines are skipped.  A sentence of more than ``--max-tokens`` tokens (default: the
service's limit) is refused with a message, since it is almost always a paragraph read as
one sentence.  Output (``--format``):
  * ``jsonl`` (default): one JSON object per sentence with the same fields as the HTTP
    API (tokens, tree, nested, spans, distances, perplexity, layer, offsets, unk_share,
    warnings), plus ``index`` (0-based sentence number), for line input ``line``
    (1-based), and ``model`` (the name and version of the model that made the tree);
  * ``ptb``: one bracketed tree per line (the model is named on stderr); with
    ``--preterminals`` every word sits under a preterminal (``(X (T The) (T cat))``, or its
    own tag from ``tagged`` input), which is what EVALB reads;
  * ``pretty``: ASCII drawings under a header naming the model.
The model is ``--checkpoint``, else ``$ONLSTM_CHECKPOINT``, else the bundled one.
The input is read and parsed in bounded chunks of ``CHUNK_SENTENCES`` sentences, each
sorted by length and parsed in padded batches of ``--batch-size``, so files of any size
stream through in constant memory.  ``--workers N`` parses chunks in N processes (each
loads the model once and uses ``cores / N`` threads unless ``--threads`` says otherwise);
at most ``2 * N`` chunks are in flight, and the output keeps the input order.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import IO, Any

from nltk.tree import Tree, TreePrettyPrinter

from ..models.checkpoint import CheckpointError
from ..models.options import PUNCTUATION_MODES, OptionError
from ..models.parser import Parser, ParseResult
from ..models.text import Sentence, split_text
from ..models.tree import DECODERS, to_ptb_string

logger = logging.getLogger(__name__)

# Sentences handed to the parser at a time; bounds memory independently of --batch-size.
CHUNK_SENTENCES = 1024
# A paragraph of running text longer than this is cut at a line end (sentences split there).
MAX_PARAGRAPH_CHARS = 1_000_000
# The preterminal above every word in `--format ptb --preterminals` output, where the input has no tags.
PRETERMINAL = "T"
# The service's default limit on tokens per sentence (ONLSTM_MAX_TOKENS_PER_SENTENCE).
DEFAULT_MAX_TOKENS = 250


class InputError(ValueError):
    """The input cannot be parsed as asked; the message says what to change."""


def ascii_tree(tree: Tree) -> str:
    """An ASCII drawing of ``tree`` with its words in order.

    NLTK's printer reorders words when it is given word leaves (it draws discontinuous
    trees); given leaf *indices* plus the sentence, it keeps them in place.
    """
    indexed = tree.copy(deep=True)
    for index, position in enumerate(indexed.treepositions("leaves")):
        indexed[position] = index
    return TreePrettyPrinter(indexed, sentence=tree.leaves()).text(unicodelines=False)


@dataclass
class _Sentence:
    sentence: Sentence
    line: int | None
    tags: list[str] | None = None  # the input's own part-of-speech tags (tagged input)


def _tagged(line: str, separator: str, number: int) -> _Sentence:
    words, tags = [], []
    for item in line.split():
        word, found, tag = item.rpartition(separator)
        if not found or not word or not tag:
            raise InputError(f"line {number}: {item[:40]!r} is not word{separator}TAG; use --input-format tokens for "
                             f"untagged tokens, or --tag-separator for another separator")
        words.append(word)
        tags.append(tag)
    return _Sentence(Sentence.from_tokens(words), number, tags)


def _sentences_from_lines(lines: Iterable[str], input_format: str, tag_separator: str = "/") -> Iterator[_Sentence]:
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if input_format == "tagged":
            yield _tagged(line, tag_separator, number)
        elif input_format == "tokens":
            yield _Sentence(Sentence.from_tokens(line.split()), number)
        else:
            sentence = Sentence.from_text(line)
            if sentence.tokens:
                yield _Sentence(sentence, number)


def _paragraphs(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Running text in paragraphs (blank-line separated), each at most about MAX_PARAGRAPH_CHARS,
    with the character offset of each paragraph in the input."""
    buffer: list[str] = []
    size = start = position = 0
    for line in lines:
        if not line.strip():
            if buffer:
                yield start, "".join(buffer)
            buffer, size = [], 0
            position += len(line)
            start = position
            continue
        buffer.append(line)
        size += len(line)
        position += len(line)
        if size >= MAX_PARAGRAPH_CHARS:
            yield start, "".join(buffer)
            buffer, size, start = [], 0, position
    if buffer:
        yield start, "".join(buffer)


def _sentences_from_text(lines: Iterable[str]) -> Iterator[_Sentence]:
    for start, paragraph in _paragraphs(lines):
        for sentence in split_text(paragraph, offset=start):
            yield _Sentence(sentence, None)


def _limited(sentences: Iterable[_Sentence], max_tokens: int, input_format: str) -> Iterator[_Sentence]:
    """Refuse a sentence longer than ``max_tokens`` (0: no limit), naming what to change."""
    for index, item in enumerate(sentences):
        n_tokens = len(item.sentence.tokens)
        if max_tokens and n_tokens > max_tokens:
            where = f"line {item.line}" if item.line is not None else f"sentence {index + 1}"
            hint = ("; is the input running text? then use --input-format text (the default), which splits "
                    "it into sentences" if input_format != "text" else "; split it with blank lines or full stops")
            raise InputError(f"{where} has {n_tokens} tokens, more than --max-tokens {max_tokens}{hint}, "
                             "or raise --max-tokens (0: no limit)")
        yield item


def _chunks(sentences: Iterable[_Sentence], size: int) -> Iterator[list[_Sentence]]:
    chunk: list[_Sentence] = []
    for sentence in sentences:
        chunk.append(sentence)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write(output: IO[str], options: _Options, index: int, sentence: _Sentence, result: ParseResult) -> None:
    output_format = options.output_format
    if output_format == "jsonl":
        record: dict[str, Any] = {"index": index}
        if sentence.line is not None:
            record["line"] = sentence.line
        record.update(result.to_dict(options.all_layers))
        record["model"] = options.model
        output.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif output_format == "ptb":
        preterminals = (sentence.tags or PRETERMINAL) if options.preterminals else None
        output.write(to_ptb_string(result.tree, preterminals) + "\n")
    else:
        where = f" (line {sentence.line})" if sentence.line is not None else ""
        model = f"{options.model['name']} {options.model['version']}"
        output.write(f"# sentence {index + 1}{where}: perplexity {result.perplexity:.1f}, layer {result.layer}, "
                     f"unknown words {result.unk_share:.0%}, model {model}\n")
        for warning in result.warnings:
            output.write(f"# warning: {warning}\n")
        output.write(ascii_tree(result.tree) + "\n")


class _CountingReader:
    """Lines of a text stream, counting lines and bytes (the progress bar moves as chunks are written)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.line = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.line += 1
            self.bytes += len(line.encode("utf-8"))
            yield line


@dataclass(frozen=True)
class _Options:
    """How to parse and write each chunk (sent to the worker processes)."""

    output_format: str
    layer: int | None
    decoder: str | None
    punctuation: str | None
    batch_size: int
    all_layers: bool
    model: dict[str, str]  # name and version, written with the output
    preterminals: bool = False
    right_branching_bias: float | None = None


def _format_chunk(parser: Parser, options: _Options, chunk: list[_Sentence], first_index: int) -> str:
    """Parse one chunk (sorted by length and batched inside ``Parser.parse``) and format it, in input order."""
    results = parser.parse_many(
        [item.sentence for item in chunk],
        layer=options.layer,
        decoder=options.decoder,
        punctuation=options.punctuation,
        right_branching_bias=options.right_branching_bias,
        batch_size=options.batch_size,
    )
    text = io.StringIO()
    for offset, (sentence, result) in enumerate(zip(chunk, results)):
        _write(text, options, first_index + offset, sentence, result)
    return text.getvalue()


# --- worker processes (--workers N): each loads the model once --------------------------------

_worker: dict[str, Any] = {}


def _start_worker(checkpoint: str | None, device: str, threads: int, options: _Options) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker["parser"] = Parser.load(checkpoint, device=device)
    _worker["options"] = options


def _format_chunk_in_worker(chunk: list[_Sentence], first_index: int) -> str:
    return _format_chunk(_worker["parser"], _worker["options"], chunk, first_index)


def ordered_map(
    function: Callable[..., Any], items: Iterable[tuple], executor: Executor, in_flight: int
) -> Iterator[Any]:
    """``function(*item)`` for each item, computed by ``executor``, yielded in the items' order.

    At most ``in_flight`` items are submitted and not yet yielded, so a long input is never
    read far ahead of the output (bounded memory).
    """
    pending: deque = deque()
    for item in items:
        pending.append(executor.submit(function, *item))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm parse",
        description="Parse sentences with an ON-LSTM model and write unlabelled binary trees.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  onlstm parse article.txt -o trees.jsonl\n"
        "  echo 'The cat sat on the mat. The dog ran.' | onlstm parse --format pretty\n"
        "  onlstm parse one-sentence-per-line.txt --input-format lines --format ptb\n"
        "  onlstm parse tagged.txt --input-format tagged --format ptb --preterminals   # trees EVALB reads",
    )
    parser.add_argument("input", nargs="?", default="-", help="input file, '-' for stdin (default)")
    parser.add_argument("-o", "--output", default="-", help="output file, '-' for stdout (default)")
    parser.add_argument("--format", choices=("jsonl", "ptb", "pretty"), default="jsonl", help="output format (default jsonl)")
    parser.add_argument(
        "--input-format",
        choices=("text", "lines", "tokens", "tagged"),
        default="text",
        help="text: running text, split into sentences (default); lines: one sentence per line; "
        "tokens: one pre-tokenized sentence per line, tokens separated by spaces; tagged: tokens as word/TAG",
    )
    parser.add_argument("--tag-separator", default="/", help="tagged input: between word and tag (default /)")
    parser.add_argument("--preterminals", action="store_true",
                        help="ptb: every word under a preterminal, (T word) or its own tag, as EVALB expects")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help=f"refuse a sentence of more tokens (default {DEFAULT_MAX_TOKENS}, the service's limit; 0: none)")
    parser.add_argument("--checkpoint", default=os.environ.get("ONLSTM_CHECKPOINT") or None,
                        help="release checkpoint (default: $ONLSTM_CHECKPOINT, else the bundled model)")
    parser.add_argument("--layer", type=int, default=None, help="0-based layer whose distances build the trees")
    parser.add_argument("--decoder", choices=sorted(DECODERS), default=None, help="tree decoder (default: the model's)")
    parser.add_argument("--punctuation", choices=PUNCTUATION_MODES, default=None, help="punctuation handling (default: the model's)")
    parser.add_argument("--right-branching-bias", type=float, default=None, metavar="STRENGTH",
                        help="the decoder's right-branching prior, d_t - STRENGTH * t / n (0: the model's own distances; "
                        "default: the model's)")
    parser.add_argument("--all-layers", action="store_true", help="jsonl: add every layer's distances and tree")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per model batch (default 64)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
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


def _open_input(path: str) -> tuple[IO[str], int | None]:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict", newline=None), None
    return open(path, encoding="utf-8", errors="strict"), os.path.getsize(path)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_argument_parser().parse_args(argv)
    if arguments.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    if arguments.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if arguments.preterminals and arguments.format != "ptb":
        print("error: --preterminals applies to --format ptb", file=sys.stderr)
        return 2
    if arguments.max_tokens < 0:
        print("error: --max-tokens must be 0 (no limit) or more", file=sys.stderr)
        return 2
    if arguments.threads is not None:
        if arguments.threads < 1:
            print("error: --threads must be at least 1", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(arguments.threads)
    try:
        stream, size = _open_input(arguments.input)
    except OSError as error:
        print(f"error: cannot read {arguments.input}: {error.strerror}", file=sys.stderr)
        return 2
    try:
        parser = Parser.load(arguments.checkpoint, device=arguments.device)
    except CheckpointError as error:
        hint = "" if arguments.checkpoint else "; pass --checkpoint PATH to use another model"
        print(f"error: cannot load the model: {error}{hint}", file=sys.stderr)
        return 1
    try:
        parser.resolve(layer=arguments.layer, decoder=arguments.decoder, punctuation=arguments.punctuation,
                       right_branching_bias=arguments.right_branching_bias)
    except OptionError as error:
        print(f"error: {error.message_for('--' + error.option.replace('_', '-'))}", file=sys.stderr)
        return 2
    model = {"name": parser.name, "version": parser.version}
    print(f"onlstm parse: model {model['name']} (version {model['version']})", file=sys.stderr)
    options = _Options(
        arguments.format, arguments.layer, arguments.decoder, arguments.punctuation, arguments.batch_size,
        arguments.all_layers, model, arguments.preterminals, arguments.right_branching_bias,
    )

    progress = None
    if arguments.progress or sys.stderr.isatty():
        from tqdm import tqdm

        # on a terminal, small inputs finish before the bar's delay and never draw it; --progress always draws
        progress = tqdm(total=size, unit="B", unit_scale=True, desc="parsing", file=sys.stderr,
                        delay=0 if arguments.progress else 1.0, leave=True)
    reader = _CountingReader(stream)
    if arguments.input_format == "text":
        sentences = _sentences_from_text(reader)
    else:
        sentences = _sentences_from_lines(reader, arguments.input_format, arguments.tag_separator)
    sentences = _limited(sentences, arguments.max_tokens, arguments.input_format)

    # chunks in input order, numbered; the bytes read by the end of each chunk move the bar when it is written
    chunk_ends: deque[tuple[int, int]] = deque()

    def numbered_chunks() -> Iterator[tuple[list[_Sentence], int]]:
        first = 0
        for chunk in _chunks(sentences, max(CHUNK_SENTENCES, arguments.batch_size)):
            chunk_ends.append((len(chunk), reader.bytes))
            yield chunk, first
            first += len(chunk)

    pool = None
    if arguments.ray is not None:
        from ..ray import format_chunks_with_ray

        del parser  # each Ray actor loads its own copy
        texts = format_chunks_with_ray(numbered_chunks(), arguments.ray, arguments.checkpoint, options,
                                       threads=arguments.threads or 1,
                                       actors=arguments.workers if arguments.workers > 1 else None,
                                       use_gpus=None if arguments.device == "cpu" else arguments.device.startswith("cuda"))
    elif arguments.workers > 1:
        threads = arguments.threads or max(1, (os.cpu_count() or 1) // arguments.workers)
        pool = ProcessPoolExecutor(
            arguments.workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a process that holds torch threads
            initializer=_start_worker,
            initargs=(arguments.checkpoint, arguments.device, threads, options),
        )
        del parser  # the workers load their own copies
        texts = ordered_map(_format_chunk_in_worker, numbered_chunks(), pool, in_flight=2 * arguments.workers)
    else:
        texts = (_format_chunk(parser, options, chunk, first) for chunk, first in numbered_chunks())

    output = sys.stdout if arguments.output == "-" else None
    count = 0
    started = time.perf_counter()
    try:
        if output is None:
            output = open(arguments.output, "w", encoding="utf-8")
        written_bytes = 0
        for text in texts:
            output.write(text)
            output.flush()
            n_sentences, read_bytes = chunk_ends.popleft()
            count += n_sentences
            if progress is not None:
                progress.update(read_bytes - written_bytes)
                written_bytes = read_bytes
                rate = count / max(time.perf_counter() - started, 1e-9)
                progress.set_postfix_str(f"{count} sentences, {rate:.0f} sentences/s", refresh=False)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenProcessPool:
        print("error: a parser worker process died (out of memory?); try fewer --workers", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:
        print(f"error: {arguments.input} is not UTF-8 text (near line {reader.line}): {error.reason}", file=sys.stderr)
        return 1
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            # the reader (e.g. `| head`) has had enough; not an error, but stdout can no longer be flushed
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"error: cannot write {arguments.output}: {error.strerror}", file=sys.stderr)
        return 1
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if progress is not None:
            progress.close()
        if output is not None and output is not sys.stdout:
            output.close()
        if arguments.input != "-":
            stream.close()
    elapsed = time.perf_counter() - started
    logger.info("parsed %d sentences in %.1f s (%.0f sentences/s)", count, elapsed, count / max(elapsed, 1e-9))
    if count == 0:
        print("warning: the input has no sentences", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
