"""Chinese words: Traditional characters read as Simplified, and words cut by jieba.

The Chinese model reads Simplified characters whatever the input's script (``to_simplified``,
OpenCC's ``t2s`` table, which maps one character to one character, so offsets into the
converted text are offsets into the input), and its words are jieba's (``segment``, jieba's
own dictionary, shipped inside its wheel: nothing is downloaded).  Training text and parse
input are cut by the same function, so the model's vocabulary is jieba's words.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)

SEGMENTER = "jieba"
SCRIPT_CONVERSION = "opencc-t2s"


@functools.cache
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


@functools.cache
def _tokenizer():
    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)  # its "Building prefix dict" lines are not ours to print
    return jieba.Tokenizer()


def to_simplified(text: str) -> str:
    """``text`` in Simplified characters, one character for each of ``text``'s (so offsets carry
    over); where a phrase of the table would change the length, character by character."""
    converted = _converter().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(_converter().convert(char) for char in text)


def segment(text: str) -> list[tuple[int, int]]:
    """Character spans of jieba's words in ``text`` (read as Simplified), whitespace left out."""
    simplified = to_simplified(text)
    return [(start, end) for _, start, end in _tokenizer().tokenize(simplified, HMM=True) if simplified[start:end].strip()]


def segment_words(text: str) -> list[str]:
    """The words of ``text`` as written (its own script), cut where ``segment`` cuts."""
    return [text[start:end] for start, end in segment(text)]
