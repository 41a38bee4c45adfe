"""Readers for the training corpora.  Every reader yields sentences as lists of
tokens *as written*; normalisation (``models.text.vocab.normalize``) happens once, when
tokens become ids, so all corpora are normalised the same way, and the same way as
parse input.  The named corpora come tokenized by their makers; a plain-text file of
your own is split into sentences and tokenized by ``models.text``, exactly as the text
given to ``Parser.parse_text`` or ``onlstm parse`` is, so training and parsing see the
same units ("cat." is read as "cat" and ".", as the parser will read it).

NLTK 3.10 refuses to open corpus files outside ``nltk.data.path``, so the files are
read here directly and trees are built with ``nltk.Tree.fromstring``.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from nltk import Tree

from ..models.text.sentences import split_text
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


def _read_text(path: Path) -> str:
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
            for chunk in _split_brackets(_read_text(path)):
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
    for line in _read_text(path).splitlines():
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
    for line in _read_text(path).splitlines():
        tokens = [item.rsplit("/", 1)[0] for item in line.split() if "/" in item]
        if tokens:
            sentences.append(tokens)
    return sentences


def read_plain(path: Path) -> list[list[str]]:
    """Tokenized text (``ptb-lm``): one sentence per line, tokens separated by whitespace."""
    return [line.split() for line in _read_text(path).splitlines() if line.strip()]


def read_text(path: Path, language: str = "en") -> list[list[str]]:
    """Raw text of your own: every line is split into sentences (one sentence per line, or a
    paragraph per line) and tokenized as parse input is (``models.text.split_text`` of ``language``)."""
    return [list(sentence.tokens) for line in _read_text(path).splitlines()
            for sentence in split_text(line, language=language)]


# The training text of each treebank of the shared data (its train split's words and its text/ files).
LANGUAGE_CORPORA = {"zh-sinica": "zh", "es-cess": "es", "pt-floresta": "pt", "nl-alpino": "nl"}


def read_language_corpus(name: str, data_dir: Path | None = None) -> list[list[str]]:
    """A treebank's training text (``LANGUAGE_CORPORA``); Chinese is cut again into words by the
    Chinese front door (jieba on Simplified characters), as parse input will be, rather than
    by the treebank's own segmentation."""
    from .treebanks import read_training_words

    language = LANGUAGE_CORPORA[name]
    sentences = read_training_words(language, data_dir)
    if language == "zh":  # the model's vocabulary is Simplified, full-width forms folded (NFKC)
        from ..models.text.chinese import segment_words, to_simplified

        sentences = [[to_simplified(unicodedata.normalize("NFKC", word)) for word in segment_words("".join(sentence))]
                     for sentence in sentences]
    return [sentence for sentence in sentences if sentence]


# A corpus named "tokens:PATH" is text tokenized already (by a segmenter of one's own: Japanese,
# Thai, or any tokenization to keep): one sentence a line, its tokens separated by spaces, used as given.
TOKENS_PREFIX = "tokens:"


def own_file(name: str) -> Path | None:
    """The file of a corpus of one's own (``my.txt`` or ``tokens:my.txt``); None for a named corpus
    of the shared data or a path that is not a file."""
    path = Path(name.removeprefix(TOKENS_PREFIX))
    return path if path.is_file() else None


def read_corpus(name: str, data_dir: Path | None = None, language: str = "en") -> list[list[str]]:
    """One named corpus of the shared data (see ``CORPORA`` and ``LANGUAGE_CORPORA``), a path
    to a plain-text file of ``language``, or ``tokens:PATH``, a file of tokenized sentences."""
    if name.startswith(TOKENS_PREFIX):
        return read_plain(Path(name.removeprefix(TOKENS_PREFIX)))
    if name in LANGUAGE_CORPORA:
        return read_language_corpus(name, data_dir)
    folder = Path(data_dir or default_data_dir())
    if name == "ptb-train":
        return read_ptb_sentences(folder, "train")
    if name == "ptb-dev":
        return read_ptb_sentences(folder, "dev")
    if name == "conll2000":
        return read_conll(folder / "conll2000" / "train.txt") + read_conll(folder / "conll2000" / "test.txt")
    if name == "ptb-lm":
        return read_plain(folder / "ptb-lm" / "valid.txt") + read_plain(folder / "ptb-lm" / "test.txt")
    if name == "brown":
        brown = folder / "brown"
        files = sorted(path for path in brown.iterdir() if re.fullmatch(r"c[a-r]\d\d", path.name))
        return [sentence for path in files for sentence in read_brown(path)]
    path = Path(name)
    if path.suffix == ".mrg":
        return [tree_tokens(tree) for tree in read_treebank(path)]
    if path.is_file():
        return read_text(path, language)
    if path.suffix or len(path.parts) > 1:  # a file's name, not one of the named corpora
        raise CorpusError(f"{name}: no such file; give the path of a text file of your own (or one of the named "
                          f"corpora: {', '.join((*CORPORA, *LANGUAGE_CORPORA))})")
    raise CorpusError(
        f"unknown corpus {name!r}: use one of {', '.join((*CORPORA, *LANGUAGE_CORPORA))} or the path of a text file"
    )
