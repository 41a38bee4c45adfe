"""Parsing files and streams: read sentences, parse them in chunks, write the trees in input order.

    from onlstm import ParseOptions, Parser
    from onlstm.models.predict import predict

    parser = Parser.load()
    predict(parser, "article.txt", "trees.jsonl")                            # running text -> JSON Lines
    predict(parser, "sentences.txt", "trees.mrg", ParseOptions(layer=1),
            input_format="lines", format="ptb", workers=4)                   # 4 processes, same output
    summary = predict(parser, io.StringIO(text), sys.stdout, format="pretty")
    summary.sentences, summary.seconds

This is what ``onlstm parse`` runs (the command only turns its flags into these arguments).

Input (``input_format``):
  * ``text`` (default): running text, split into sentences (paragraphs, separated by blank
    lines, are read one at a time); offsets count characters from the start of the input;
  * ``lines``: one raw sentence per line, tokenized here;
  * ``tokens``: one pre-tokenized sentence per line, tokens separated by whitespace;
  * ``tagged``: like ``tokens``, each token ``word/TAG`` (``tag_separator`` to change ``/``);
    the tags become the preterminals of ``format="ptb", preterminals=True``.
Blank lines are skipped.  A sentence of more than ``max_tokens`` tokens is refused
(``InputError``), since it is almost always a paragraph read as one sentence.

Output (``format``):
  * ``jsonl`` (default): one JSON object per sentence with the fields of the HTTP API
    (``ParseResult.to_dict``; every layer's too with ``ParseOptions(all_layers=True)``), plus
    ``index`` (0-based sentence number), for line input ``line`` (1-based), ``language`` and
    ``model`` (the name, version and language of the model that made the tree);
  * ``ptb``: one bracketed tree per line; with ``preterminals`` every word sits under a
    preterminal (``(X (T The) (T cat))``, or its own tag from ``tagged`` input), which is
    what EVALB reads;
  * ``pretty``: ASCII drawings under a header naming the sentence and the model.

Text is split and tokenized as the parser's language is (``parser.language``); a worker
process or Ray actor loads the model of that language.

The input is read and parsed in chunks of ``CHUNK_SENTENCES`` sentences, each sorted by
length and parsed in padded batches of ``batch_size``, so inputs of any size stream through
in constant memory.  ``workers=N`` parses chunks in N processes, each loading the model once
(from ``parser.path``); at most ``2 * N`` chunks are in flight and the output keeps the input
order.  ``onlstm.ray.chunk_runner`` runs the chunks on Ray actors instead (``runner=``).
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import re
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nltk.tree import Tree, TreePrettyPrinter

from .json_text import dumps
from .languages import DEFAULT_LANGUAGE, LANGUAGES, WEIGHTS
from .limits import DEFAULT_MAX_TOKENS  # the service's ONLSTM_MAX_TOKENS_PER_SENTENCE default
from .options import ParseOptions
from .parser import Parser, ParseResult
from .text.sentences import Sentence, split_text
from .trees.decoders import count_leaves, to_ptb_string

__all__ = [
    "CHUNK_SENTENCES", "DEFAULT_MAX_TOKENS", "INPUT_FORMATS", "OUTPUT_FORMATS", "ChunkJob", "InputEncodingError",
    "InputError", "InputSentence", "OutputFormat", "PredictSummary", "ascii_tree", "format_chunk", "ordered_map",
    "predict", "read_sentences",
]

logger = logging.getLogger(__name__)

# Sentences handed to the parser at a time; bounds memory independently of the batch size.
CHUNK_SENTENCES = 1024
# A paragraph of running text longer than this is cut at a line end (sentences split there).
MAX_PARAGRAPH_CHARS = 1_000_000
# The preterminal above every word in ptb output with preterminals, where the input has no tags.
PRETERMINAL = "T"
INPUT_FORMATS = ("text", "lines", "tokens", "tagged")
OUTPUT_FORMATS = ("jsonl", "ptb", "pretty")


class InputError(ValueError):
    """The input cannot be parsed as asked; the message says what to change.  ``code``, stable for
    programs: ``sentence_too_long`` (over ``max_tokens``), ``malformed_tag`` (a ``tagged`` token
    without its tag), ``not_utf8`` (``InputEncodingError``)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code

    def __reduce__(self):  # picklable: worker processes raise it
        return (InputError, (str(self), self.code))


class InputEncodingError(InputError):
    """The input is not UTF-8 text (``code`` ``not_utf8``)."""

    def __init__(self, message: str, code: str = "not_utf8"):
        super().__init__(message, code)

    def __reduce__(self):
        return (InputEncodingError, (str(self), self.code))


@dataclass(frozen=True)
class OutputFormat:
    """How each parsed sentence is written: ``jsonl``, ``ptb`` (``preterminals`` for EVALB) or ``pretty``."""

    name: str = "jsonl"
    preterminals: bool = False

    def __post_init__(self) -> None:
        if self.name not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {list(OUTPUT_FORMATS)}, got {self.name!r}")
        if self.preterminals and self.name != "ptb":
            raise ValueError("preterminals applies to the ptb format")


@dataclass(frozen=True)
class InputSentence:
    """One sentence of the input, with where it came from."""

    sentence: Sentence
    line: int | None  # 1-based line number, for line input
    tags: list[str] | None = None  # the input's own part-of-speech tags (tagged input)
    first_line: int | None = None  # running text: the line the sentence starts on, named in errors


@dataclass(frozen=True)
class ChunkJob:
    """What parsing and writing a chunk needs, here, in a worker process or on a Ray actor."""

    options: ParseOptions  # resolved: the model's defaults filled in, its language included
    output_format: OutputFormat
    batch_size: int
    checkpoint: str | None  # where workers load the model from; None: the bundled one of options.language
    device: str


@dataclass(frozen=True)
class PredictSummary:
    """What ``predict`` did."""

    sentences: int
    seconds: float
    output: str  # the output file's path, or the stream's name
    model: dict[str, str]  # the name, version and language of the model (Parser.identity)


# --- reading --------------------------------------------------------------------------------


def _tagged(line: str, separator: str, number: int) -> InputSentence:
    words, tags = [], []
    for item in line.split():
        word, found, tag = item.rpartition(separator)
        if not found or not word or not tag:
            raise InputError(f"line {number}: {item[:40]!r} is not word{separator}TAG; use --input-format tokens for "
                             f"untagged tokens, or --tag-separator for another separator", "malformed_tag")
        words.append(word)
        tags.append(tag)
    return InputSentence(Sentence.from_tokens(words), number, tags)


def _sentences_from_lines(lines: Iterable[str], input_format: str, tag_separator: str,
                          language: str) -> Iterator[InputSentence]:
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if input_format == "tagged":
            yield _tagged(line, tag_separator, number)
        elif input_format == "tokens":
            yield InputSentence(Sentence.from_tokens(line.split()), number)
        else:
            sentence = Sentence.from_text(line, language=language)
            if sentence.tokens:
                yield InputSentence(sentence, number)


def _paragraphs(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """Running text in paragraphs (blank-line separated), each at most about MAX_PARAGRAPH_CHARS,
    with the character offset and the 1-based line number of each paragraph in the input."""
    buffer: list[str] = []
    size = start = position = 0
    first_line = number = 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if buffer:
                yield start, first_line, "".join(buffer)
            buffer, size = [], 0
            position += len(line)
            start, first_line = position, number + 1
            continue
        buffer.append(line)
        size += len(line)
        position += len(line)
        if size >= MAX_PARAGRAPH_CHARS:
            yield start, first_line, "".join(buffer)
            buffer, size, start, first_line = [], 0, position, number + 1
    if buffer:
        yield start, first_line, "".join(buffer)


def _text_sentences(lines: Iterable[str], language: str) -> Iterator[InputSentence]:
    """The sentences of running text, each with the line it starts on."""
    for start, first_line, paragraph in _paragraphs(lines):
        line, position = first_line, 0
        for sentence in split_text(paragraph, offset=start, language=language):
            begin = sentence.offsets[0][0] - start if sentence.offsets else position
            line += paragraph.count("\n", position, begin)  # linear: each stretch is counted once
            position = begin
            yield InputSentence(sentence, None, first_line=line)


def _limited(sentences: Iterable[InputSentence], max_tokens: int, input_format: str) -> Iterator[InputSentence]:
    """Refuse a sentence longer than ``max_tokens`` (0: no limit), naming what to change."""
    for index, item in enumerate(sentences):
        n_tokens = len(item.sentence.tokens)
        if max_tokens and n_tokens > max_tokens:
            where = f"line {item.line}" if item.line is not None else f"sentence {index + 1}" + (
                f" (from line {item.first_line})" if item.first_line is not None else "")
            hint = ("; is the input running text? then use --input-format text (the default), which splits "
                    "it into sentences" if input_format != "text" else "; split it with blank lines or full stops")
            raise InputError(f"{where} has {n_tokens} tokens, more than --max-tokens {max_tokens}{hint}, "
                             "or raise --max-tokens (max_tokens= in Python; 0: no limit)", "sentence_too_long")
        yield item


def read_sentences(lines: Iterable[str], input_format: str = "text", *, tag_separator: str = "/",
                   max_tokens: int = DEFAULT_MAX_TOKENS, language: str = DEFAULT_LANGUAGE) -> Iterator[InputSentence]:
    """The sentences of ``lines`` (a text stream or any iterable of lines), lazily, in order; raw
    text split and tokenized as ``language`` (ISO 639-1) is.

    Raises ``InputError`` (as the sentences are read) for a sentence of more than
    ``max_tokens`` tokens (0: no limit) or a malformed ``tagged`` token.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {list(INPUT_FORMATS)}, got {input_format!r}")
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be 0 (no limit) or more, got {max_tokens}")
    sentences: Iterator[InputSentence]
    if input_format == "text":
        sentences = _text_sentences(lines, language)
    else:
        sentences = _sentences_from_lines(lines, input_format, tag_separator, language)
    return _limited(sentences, max_tokens, input_format)


class _CountingReader:
    """Lines of a text stream, counting lines and bytes (progress moves as chunks are written)."""

    def __init__(self, stream: Iterable[str], name: str):
        self.stream, self.name = stream, name
        self.line = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self.stream:
                self.line += 1
                self.bytes += len(line.encode("utf-8"))
                yield line
        except UnicodeDecodeError as error:
            # the line being decoded is the one after the last line read (numbered from 1)
            raise InputEncodingError(f"{self.name} is not UTF-8 text (near line {self.line + 1}): {error.reason}; "
                                     "convert it first, e.g. `iconv -f latin1 -t utf-8` for Latin-1 text") from error


def _chunks(sentences: Iterable[InputSentence], size: int) -> Iterator[list[InputSentence]]:
    chunk: list[InputSentence] = []
    for sentence in sentences:
        chunk.append(sentence)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- writing --------------------------------------------------------------------------------


# NLTK's printer recurses as deep as the tree (it fails near 1,000 words) and a drawing of more
# words than this is thousands of columns wide: such a sentence is written as its bracketing
LONGEST_DRAWING = 300


def ascii_tree(tree: Tree) -> str:
    """An ASCII drawing of ``tree`` with its words in order; a tree of more than
    ``LONGEST_DRAWING`` words gets a note and its one-line bracketing instead.

    NLTK's printer reorders words when it is given word leaves (it draws discontinuous
    trees); given leaf *indices* plus the sentence, it keeps them in place.  It counts a
    character as one column, and a Chinese or Japanese one takes two on a terminal: the tree is
    drawn over stand-ins as wide as each word is on screen, then the words are put back in the
    bottom line, where the printer sets them.
    """
    words = count_leaves(tree)
    if words > LONGEST_DRAWING:
        return (f"# {words} words: too long to draw (at most {LONGEST_DRAWING}); its bracketing, as --format ptb "
                f"writes it:\n{to_ptb_string(tree)}")
    indexed = tree.copy(deep=True)
    for index, position in enumerate(indexed.treepositions("leaves")):
        indexed[position] = index
    leaves = tree.leaves()
    widths = [_display_width(leaf) for leaf in leaves]
    if widths == [len(leaf) for leaf in leaves]:
        return TreePrettyPrinter(indexed, sentence=leaves).text(unicodelines=False)
    lines = TreePrettyPrinter(indexed, sentence=["x" * width for width in widths]).text(unicodelines=False).split("\n")
    bottom = max(index for index, line in enumerate(lines) if line.strip())
    pieces = re.split(r"( +)", lines[bottom])
    if sum(1 for piece in pieces if piece.strip()) != len(leaves):  # not one stand-in per word: draw as it is
        return TreePrettyPrinter(indexed, sentence=leaves).text(unicodelines=False)
    words_back = iter(leaves)
    lines[bottom] = "".join(next(words_back) if piece.strip() else piece for piece in pieces)
    return "\n".join(lines)


def _display_width(word: str) -> int:
    """Columns a word takes on a terminal: two for a wide (East Asian) character, none for a combining mark."""
    return sum(0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
               for char in word)


def _write(output: IO[str], job: ChunkJob, model: dict[str, str], index: int, item: InputSentence,
           result: ParseResult) -> None:
    name = job.output_format.name
    if name == "jsonl":
        record: dict[str, Any] = {"index": index}
        if item.line is not None:
            record["line"] = item.line
        record.update(result.to_dict(job.options.all_layers))  # its language included
        record["model"] = model
        # nested is as deep as the tree: past json's reach for a long sentence (--max-tokens raised)
        output.write(dumps(record, depth_hint=len(result.tokens), allow_nan=True) + "\n")
    elif name == "ptb":
        preterminals = (item.tags or PRETERMINAL) if job.output_format.preterminals else None
        output.write(to_ptb_string(result.tree, preterminals) + "\n")
    else:
        where = f" (line {item.line})" if item.line is not None else ""
        output.write(f"# sentence {index + 1}{where}: perplexity {result.perplexity:.1f}, layer {result.layer}, "
                     f"unknown words {result.unk_share:.0%}, model {model['name']} {model['version']} "
                     f"({model['language']})\n")
        for warning in result.warnings:
            output.write(f"# warning: {warning}\n")
        output.write(ascii_tree(result.tree) + "\n")


def format_chunk(parser: Parser, job: ChunkJob, chunk: list[InputSentence], first_index: int) -> str:
    """Parse one chunk (sorted by length and batched inside ``Parser.parse_many``) and format it, in
    input order; ``first_index`` is the 0-based number of its first sentence in the input."""
    results = parser.parse_many([item.sentence for item in chunk], job.options, batch_size=job.batch_size)
    model = parser.identity
    text = io.StringIO()
    for offset, (item, result) in enumerate(zip(chunk, results)):
        _write(text, job, model, first_index + offset, item, result)
    return text.getvalue()


# --- running the chunks: here, or in worker processes ---------------------------------------

# (chunk, index of its first sentence) in input order -> each chunk's text, in the same order
ChunkRunner = Callable[[Iterable[tuple[list[InputSentence], int]], ChunkJob], Iterator[str]]

_worker: dict[str, Any] = {}


def _start_worker(job: ChunkJob, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker["parser"] = Parser.load(job.checkpoint, device=job.device, language=job.options.language)
    _worker["job"] = job


def _format_chunk_in_worker(chunk: list[InputSentence], first_index: int) -> str:
    return format_chunk(_worker["parser"], _worker["job"], chunk, first_index)


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


def _in_processes(workers: int, threads: int | None) -> ChunkRunner:
    threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def run(chunks: Iterable[tuple[list[InputSentence], int]], job: ChunkJob) -> Iterator[str]:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a process that holds torch threads
            initializer=_start_worker,
            initargs=(job, threads),
        )
        try:
            yield from ordered_map(_format_chunk_in_worker, chunks, pool, in_flight=2 * workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return run


# --- the whole file -------------------------------------------------------------------------


def _open_source(source: str | Path | IO[str] | Iterable[str]) -> tuple[Iterable[str], str, Callable[[], None]]:
    """(lines, name, close) of a path (``-``: stdin), a text stream or an iterable of lines."""
    if isinstance(source, (str, Path)):
        if str(source) == "-":
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="strict", newline=None)
            return stdin, "<stdin>", lambda: None
        stream = open(source, encoding="utf-8", errors="strict")
        return stream, str(source), stream.close
    return source, str(getattr(source, "name", "<input>")), lambda: None


def _open_output(output: str | Path | IO[str]) -> tuple[IO[str], str, Callable[[], None]]:
    """(stream, name, close) of a path (``-``: stdout) or a text stream."""
    if isinstance(output, (str, Path)):
        if str(output) == "-":
            return sys.stdout, "<stdout>", lambda: None
        stream = open(output, "w", encoding="utf-8")
        return stream, str(output), stream.close
    return output, str(getattr(output, "name", "<output>")), lambda: None


def _job(parser: Parser, options: ParseOptions | None, values: dict[str, Any], output_format: OutputFormat,
         batch_size: int) -> ChunkJob:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # the bundled model is named by its language, not its path: a Ray node has the package elsewhere
    bundled = WEIGHTS / LANGUAGES[parser.language].weights if parser.language in LANGUAGES else None
    checkpoint = None if parser.path is None or Path(parser.path) == bundled else str(parser.path)
    return ChunkJob(parser.resolve(options, **values), output_format, batch_size, checkpoint, str(parser.device))


def predict(
    parser: Parser,
    source: str | Path | IO[str] | Iterable[str],
    output: str | Path | IO[str],
    options: ParseOptions | None = None,
    *,
    format: str = "jsonl",
    preterminals: bool = False,
    input_format: str = "text",
    tag_separator: str = "/",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    batch_size: int = 64,
    workers: int = 1,
    threads: int | None = None,
    runner: ChunkRunner | None = None,
    progress: Callable[[int, int], None] | None = None,
    **values: Any,
) -> PredictSummary:
    """Parse every sentence of ``source`` and write the trees to ``output``, in input order.

    Args:
        source: a path (``"-"``: stdin), a text stream or an iterable of lines (UTF-8 when read here).
        output: a path (``"-"``: stdout) or a text stream.
        options: the parse options (``ParseOptions``; ``None``: the model's defaults), with
            keyword ``values`` (``layer=1``, ``all_layers=True``, ...) laid over them.
        format, preterminals: the output format (see the module doc).
        input_format, tag_separator, max_tokens: how the input is read (see ``read_sentences``).
        batch_size: sentences per model call.
        workers: processes that parse chunks (1: this process); each loads the model from
            ``parser.path`` and uses ``threads`` torch threads (default: cores / workers).
        runner: where the chunks run instead (e.g. ``onlstm.ray.chunk_runner(...)``).
        progress: called after each chunk is written with (sentences so far, bytes read so far).
    Raises:
        OptionError: an option this model cannot take (before anything is read or written).
        InputError: the input cannot be parsed as asked (``InputEncodingError``: not UTF-8).
        ValueError: an argument out of range.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    job = _job(parser, options, values, OutputFormat(format, preterminals), batch_size)
    if runner is None and workers > 1:
        runner = _in_processes(workers, threads)
    lines, source_name, close_source = _open_source(source)
    try:
        reader = _CountingReader(lines, source_name)
        sentences = read_sentences(reader, input_format, tag_separator=tag_separator, max_tokens=max_tokens,
                                   language=parser.language)
        return _write_chunks(parser, job, runner, _chunks(sentences, max(CHUNK_SENTENCES, batch_size)), reader,
                             output, progress)
    finally:
        close_source()


def _write_chunks(parser: Parser, job: ChunkJob, runner: ChunkRunner | None, chunks: Iterable[list[InputSentence]],
                  reader: _CountingReader, output: str | Path | IO[str],
                  progress: Callable[[int, int], None] | None) -> PredictSummary:
    # how many sentences each chunk has and the bytes read by its end, for the progress callback
    chunk_ends: deque[tuple[int, int]] = deque()

    def numbered() -> Iterator[tuple[list[InputSentence], int]]:
        first = 0
        for chunk in chunks:
            chunk_ends.append((len(chunk), reader.bytes))
            yield chunk, first
            first += len(chunk)

    texts = (runner or _here(parser))(numbered(), job)
    stream, output_name, close_output = _open_output(output)
    count, started = 0, time.perf_counter()
    try:
        for text in texts:
            stream.write(text)
            stream.flush()
            n_sentences, read_bytes = chunk_ends.popleft()
            count += n_sentences
            if progress is not None:
                progress(count, read_bytes)
        if progress is not None:  # blank lines after the last full chunk are read once it is written
            progress(count, reader.bytes)
    finally:
        close_texts = getattr(texts, "close", None)
        if close_texts is not None:  # a generator: stops its workers or actors when writing fails
            close_texts()
        close_output()
    elapsed = time.perf_counter() - started
    logger.info("parsed %d sentences in %.1f s (%.0f sentences/s)", count, elapsed, count / max(elapsed, 1e-9))
    return PredictSummary(count, elapsed, output_name, parser.identity)


def _here(parser: Parser) -> ChunkRunner:
    def run(chunks: Iterable[tuple[list[InputSentence], int]], job: ChunkJob) -> Iterator[str]:
        for chunk, first in chunks:
            yield format_chunk(parser, job, chunk, first)

    return run
