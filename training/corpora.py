"""The training corpora by name, and text of one's own.  Every reader yields sentences as lists of
tokens *as written*; normalisation (``models.text.vocab.normalize``) happens once, when
tokens become ids, so all corpora are normalised the same way, and the same way as
parse input.  The named corpora come tokenized by their makers (``training.text_files``
reads their files; ``training.treebanks`` the other languages' treebanks); a plain-text file of
your own is split into sentences and tokenized by ``models.text``, exactly as the text
given to ``Parser.parse_text`` or ``onlstm parse`` is, so training and parsing see the
same units ("cat." is read as "cat" and ".", as the parser will read it).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ..models.text.sentences import split_text
from .text_files import (
    CORPORA,
    PTB_SPLITS,
    CorpusError,
    default_data_dir,
    ptb_split_files,
    read_brown,
    read_conll,
    read_plain,
    read_ptb_sentences,
    read_treebank,
    read_utf8_text,
    tree_tokens,
)
from .treebanks import read_training_words

__all__ = ["CORPORA", "LANGUAGE_CORPORA", "PTB_SPLITS", "TOKENS_PREFIX", "CorpusError", "default_data_dir", "own_file",
           "ptb_split_files", "read_brown", "read_conll", "read_corpus", "read_language_corpus", "read_plain",
           "read_ptb_sentences", "read_text", "read_treebank", "tree_tokens"]


def read_text(path: Path, language: str = "en") -> list[list[str]]:
    """Raw text of your own: every line is split into sentences (one sentence per line, or a
    paragraph per line) and tokenized as parse input is (``models.text.split_text`` of ``language``)."""
    return [list(sentence.tokens) for line in read_utf8_text(path).splitlines()
            for sentence in split_text(line, language=language)]


# The training text of each treebank of the shared data (its train split's words and its text/ files).
LANGUAGE_CORPORA = {"zh-sinica": "zh", "es-cess": "es", "pt-floresta": "pt", "nl-alpino": "nl"}


def read_language_corpus(name: str, data_dir: Path | None = None) -> list[list[str]]:
    """A treebank's training text (``LANGUAGE_CORPORA``); Chinese is cut again into words by the
    Chinese front door (jieba on Simplified characters), as parse input will be, rather than
    by the treebank's own segmentation."""
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
