"""The files of the training corpora, read: Penn Treebank ``.mrg`` trees, CoNLL-2000, Brown,
tokenized plain text.  Every reader yields sentences as lists of tokens *as written*; what a
corpus name means and how text of one's own is tokenized is ``training.corpora``'s business.

NLTK 3.10 refuses to open corpus files outside ``nltk.data.path``, so the files are
read here directly and trees are built with ``nltk.Tree.fromstring``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from nltk import Tree

from ..models.trees.decoders import unescape_token

logger = logging.getLogger(__name__)

# The ptb-sample split (see the data README): train wsj_0001-0139, dev wsj_0140-0159.
PTB_SPLITS = {"train": range(1, 140), "dev": range(140, 160)}

CORPORA = ("ptb-train", "ptb-dev", "conll2000", "ptb-lm", "brown")


class CorpusError(ValueError):
    """A corpus file that cannot be used for training; the message says what to do."""


def default_data_dir() -> Path:
    """``$ONLSTM_DATA``, else ``../shared/data`` beside the repository."""
    if "ONLSTM_DATA" in os.environ:
        return Path(os.environ["ONLSTM_DATA"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_utf8_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CorpusError(f"{path}: UTF-16 encoded; convert it to UTF-8 first, e.g. `iconv -f utf-16 -t utf-8`")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not part of the first word
    if b"\x00" in raw[:65536]:
        raise CorpusError(f"{path}: looks like a binary file (NUL bytes); give a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path}: not valid UTF-8 (byte {error.start}); convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


# --- Penn Treebank .mrg -----------------------------------------------------------------


def _split_brackets(text: str) -> Iterator[str]:
    """Top-level bracketed expressions of a .mrg file."""
    depth = 0
    start = None
    for index, char in enumerate(text):
        if char == "(":
            if depth == 0:
                start = index
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and start is not None:
                yield text[start : index + 1]
                start = None
            elif depth < 0:
                raise ValueError("unbalanced ')'")
    if depth != 0:
        raise ValueError("unbalanced '('")


def read_treebank(paths: list[Path] | Path) -> list[Tree]:
    """Gold trees of one or more .mrg files (the outer unlabelled wrapper removed)."""
    if isinstance(paths, (str, Path)):
        paths = [Path(paths)]
    trees = []
    for path in paths:
        try:
            for chunk in _split_brackets(read_utf8_text(path)):
                tree = Tree.fromstring(chunk)
                if tree.label() == "" and len(tree) == 1 and isinstance(tree[0], Tree):
                    tree = tree[0]
                trees.append(tree)
        except ValueError as error:
            raise CorpusError(f"{path}: not a bracketed treebank file ({error})") from None
    return trees


def ptb_split_files(data_dir: Path | None = None, split: str = "dev") -> list[Path]:
    """The .mrg files of the ``train`` or ``dev`` split of ``ptb-sample``."""
    if split not in PTB_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(PTB_SPLITS)}")
    folder = Path(data_dir or default_data_dir())
    if folder.name != "ptb-sample":
        folder = folder / "ptb-sample"
    files = [folder / f"wsj_{number:04d}.mrg" for number in PTB_SPLITS[split]]
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise CorpusError(f"{missing[0]} is missing; point --data (or ONLSTM_DATA) at the shared data folder")
    return files


def tree_tokens(tree: Tree) -> list[str]:
    """The sentence of a gold tree as written: traces removed, PTB escapes undone."""
    return [unescape_token(word) for word, tag in tree.pos() if tag != "-NONE-"]


def read_ptb_sentences(data_dir: Path | None = None, split: str = "train") -> list[list[str]]:
    return [tree_tokens(tree) for tree in read_treebank(ptb_split_files(data_dir, split))]


# --- other formats ----------------------------------------------------------------------


def read_conll(path: Path) -> list[list[str]]:
    """CoNLL-2000: ``word POS chunk`` per line, a blank line between sentences."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for line in read_utf8_text(path).splitlines():
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(fields[0])
    if current:
        sentences.append(current)
    return sentences


def read_brown(path: Path) -> list[list[str]]:
    """Brown: ``word/tag`` tokens, one sentence per non-blank line."""
    sentences = []
    for line in read_utf8_text(path).splitlines():
        tokens = [item.rsplit("/", 1)[0] for item in line.split() if "/" in item]
        if tokens:
            sentences.append(tokens)
    return sentences


def read_plain(path: Path) -> list[list[str]]:
    """Tokenized text (``ptb-lm``): one sentence per line, tokens separated by whitespace."""
    return [line.split() for line in read_utf8_text(path).splitlines() if line.strip()]
