"""Chinese sentences and words, with exact offsets into the text as written.

* Sentences end at 。｡．！!？?；;… (a run of them, ``？！``, ``……``), with the closing quotes and
  brackets that follow (``」』）”’》``) kept on the sentence they close; a mark inside a quotation
  or bracket that goes on after it does not end the sentence (``「你好！我是小明。」他说。`` is
  two sentences: the quotation, then ``他说。``).  A half-width full stop ends a sentence only
  after a Chinese character (``3.5`` and ``a.b`` are not ends).  A blank line always ends one.
* Words are ``chinese.segment``'s (jieba's cut of the text read in Simplified characters, so
  Traditional and Simplified input are cut alike), given back as written.  Each punctuation
  mark is its own token (``……`` and ``——``, one mark two characters wide, one token).  A run
  of other scripts inside the Chinese (``iPhone 12``, ``COVID-19``, an e-mail, a URL,
  full-width ``ＡＢＣ``) is tokenized by the English rules, so its words and numbers stay whole.
"""

from __future__ import annotations

import re
import unicodedata

from .chinese import segment
from .english import english_tokenize_with_offsets

__all__ = ["sentence_spans", "tokenize_with_offsets"]

Piece = tuple[str, int, int]

_TERMINATORS = "。｡．.！!？?；;…"
_CLOSING = "」』）”’》〉】〕)]}"
_OPENING = "「『（“‘《〈【〔([{"
# A quotation left open must not swallow the rest of a long paragraph: after this many
# characters its terminators end sentences again.
_LONGEST_QUOTATION = 300
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_WIDE_MARKS = frozenset("…—")  # one mark written with two characters: ……  ——


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of Chinese ``text``, whitespace trimmed.
    One pass over the text: linear in its length."""
    spans: list[tuple[int, int]] = []
    paragraph_start = 0
    for paragraph_end in [match.start() for match in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]:
        start = paragraph_start
        for end in _sentence_ends(text, paragraph_start, paragraph_end):
            _add_trimmed(spans, text, start, end)
            start = end
        _add_trimmed(spans, text, start, paragraph_end)
        paragraph_start = paragraph_end
    return spans


def _sentence_ends(text: str, start: int, end: int) -> list[int]:
    """Positions in ``text[start:end]`` right after a sentence's final marks and closing quotes."""
    ends: list[int] = []
    open_since: list[int] = []  # where each quotation or bracket still open began
    index = start
    while index < end:
        char = text[index]
        if char in _OPENING:
            open_since.append(index)
        elif char in _CLOSING and open_since:
            open_since.pop()
        if char in _TERMINATORS and _is_final(text, index, start):
            after = index + 1
            while after < end and (text[after] in _TERMINATORS or text[after] in _CLOSING):
                if text[after] in _CLOSING and open_since:
                    open_since.pop()
                after += 1
            if not open_since or index - open_since[-1] > _LONGEST_QUOTATION:
                open_since.clear()
                ends.append(after)
            index = after
            continue
        index += 1
    return ends


def _is_final(text: str, index: int, start: int) -> bool:
    """A full stop of the Latin kind (``.``, ``．``) ends a sentence only after a Chinese character (not ``3.5``)."""
    if text[index] not in ".．":
        return True
    return index > start and _is_han(text[index - 1])


def _add_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


# --- words -------------------------------------------------------------------------------


def _is_han(char: str) -> bool:
    """Chinese (and Japanese) characters and the wide punctuation written with them."""
    code = ord(char)
    return (0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F
            or 0xFE30 <= code <= 0xFE4F or 0x2000 <= code <= 0x206F
            or (0xFF00 <= code <= 0xFFEF and not unicodedata.normalize("NFKC", char).isalnum()))


def _runs(sentence: str) -> list[tuple[bool, int, int]]:
    """Maximal runs of Chinese (``True``) and of anything else (``False``), whitespace between
    runs of other scripts kept inside them (``iPhone 12``)."""
    runs: list[tuple[bool, int, int]] = []
    for index, char in enumerate(sentence):
        chinese = _is_han(char)
        if char.isspace() and runs and not runs[-1][0]:
            chinese = False  # a space inside a run of other scripts stays in it
        elif char.isspace():
            continue
        if runs and runs[-1][0] == chinese and runs[-1][2] == index:
            runs[-1] = (chinese, runs[-1][1], index + 1)
        else:
            runs.append((chinese, index, index + 1))
    return runs


def tokenize_with_offsets(sentence: str) -> list[Piece]:
    """Words of one Chinese sentence as written, with their ``[start, end)`` spans."""
    pieces: list[Piece] = []
    for chinese, start, end in _runs(sentence):
        run = sentence[start:end]
        if chinese:
            spans = segment(run)
        else:
            # full-width Latin letters and digits read as ASCII (one character for one)
            folded = "".join(_fold(char) for char in run)
            spans = [(piece_start, piece_end) for _, piece_start, piece_end in english_tokenize_with_offsets(folded)]
        pieces.extend((run[piece_start:piece_end], start + piece_start, start + piece_end)
                      for piece_start, piece_end in spans)
    return _join_wide_marks(pieces)


def _fold(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else char


def _join_wide_marks(pieces: list[Piece]) -> list[Piece]:
    """``…`` ``…`` -> ``……``: jieba gives each character of the mark apart."""
    joined: list[Piece] = []
    for token, start, end in pieces:
        if (joined and token in _WIDE_MARKS and joined[-1][2] == start
                and set(joined[-1][0]) == {token}):
            joined[-1] = (joined[-1][0] + token, joined[-1][1], end)
        else:
            joined.append((token, start, end))
    return joined
