"""Sentences and tokens of Spanish, Portuguese and Dutch: the English rules of ``sentences``,
with each language's abbreviations, marks and contractions (one ``Rules`` per language, in
``spanish``, ``portuguese`` and ``dutch``).

* Sentences: ``¿`` and ``¡`` open a sentence as an opening quote does (``Hola. ¿Qué tal?`` is
  two sentences), and a full stop after one of the language's abbreviations does not end one
  before a name (``Sra. Pérez``, ``dhr. Jansen``), a number (``pág. 5``) or a lowercase word
  (``bv. de``); before a capitalised word it does (``... enz. Dat``), as in English.
* Tokens: the English (Penn Treebank) tokens, then ``¿``/``¡`` split off their word, the
  language's abbreviations keep their full stop (``Sra.``, ``bv.``), and the language's own
  step (``Rules.language_step``: Portuguese contractions, Dutch ``auto's``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .english import OPENING_MARKS, english_sentence_spans, english_tokenize_with_offsets

__all__ = ["Piece", "Rules", "join_adjacent", "sentence_spans", "tokenize_with_offsets", "words"]

Piece = tuple[str, int, int]  # a token and its [start, end) in the sentence


def _unchanged(sentence: str, pieces: list[Piece]) -> list[Piece]:
    return pieces


@dataclass(frozen=True)
class Rules:
    """One language's abbreviations (lowercase, without their final full stop) and its own token step.

    Attributes:
        titles: written before a name; their full stop never ends a sentence (``sra``, ``dhr``).
        before_numbers: their full stop does not end a sentence before a number (``pág. 5``).
        abbreviations: every other one; its full stop ends a sentence only before a capital.
        language_step: the language's own rules on the common tokens (``(sentence, pieces) -> pieces``).
    """

    titles: frozenset[str]
    before_numbers: frozenset[str]
    abbreviations: frozenset[str]
    language_step: Callable[[str, list[Piece]], list[Piece]] = _unchanged
    every_abbreviation: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "every_abbreviation", self.titles | self.before_numbers | self.abbreviations)


def words(text: str) -> frozenset[str]:
    """The abbreviations of a whitespace-separated list, lowercased, final full stops removed."""
    return frozenset(word.lower().removesuffix(".") for word in text.split())


# --- sentences ---------------------------------------------------------------------------

# The English splitter knows that an opening quote may begin a sentence; ¿ and ¡ do the same,
# so it reads them as one (a character for a character: the spans fit the text as written).
_INVERTED_AS_QUOTE = str.maketrans("¿¡", "‘‘")
_OPENERS = OPENING_MARKS + "¿¡"  # what may stand before a word: English's marks, and Spanish's
_WORD = re.compile(r"\S+")


def sentence_spans(text: str, rules: Rules) -> list[tuple[int, int]]:
    """The English sentence spans of ``text``, joined again where a sentence 'ended' at one of the
    language's abbreviations that does not end it. Linear in ``len(text)``."""
    joined: list[tuple[int, int]] = []
    for start, end in english_sentence_spans(text.translate(_INVERTED_AS_QUOTE)):
        if joined and _goes_on(text, joined[-1], start, rules):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _goes_on(text: str, previous: tuple[int, int], start: int, rules: Rules) -> bool:
    """Whether the sentence ending at ``previous`` goes on at ``start``: it ends in an abbreviation
    of the language whose full stop does not end a sentence before the word at ``start``."""
    if text.count("\n", previous[1], start) >= 2:
        return False  # a blank line always ends a sentence
    last_start = previous[1]
    while last_start > previous[0] and not text[last_start - 1].isspace():
        last_start -= 1  # back over the last word only: linear in all
    last = text[last_start : previous[1]]
    if not last.endswith(".") or last.endswith(".."):
        return False
    abbreviation = last[:-1].lstrip(_OPENERS).lower()
    following_match = _WORD.match(text, start)
    following = following_match.group().lstrip(_OPENERS) if following_match else ""
    if abbreviation in rules.titles:
        return True
    if abbreviation in rules.before_numbers and following[:1].isdigit():
        return True
    return abbreviation in rules.every_abbreviation and following[:1].islower()


# --- tokens ------------------------------------------------------------------------------


def tokenize_with_offsets(sentence: str, rules: Rules) -> list[Piece]:
    """The English tokens of ``sentence``, with the language's marks, abbreviations and own step."""
    pieces = _split_inverted_marks(english_tokenize_with_offsets(sentence))
    pieces = _join_abbreviation_stops(pieces, rules)
    return rules.language_step(sentence, pieces)


def _split_inverted_marks(pieces: list[Piece]) -> list[Piece]:
    """``¿Qué`` -> ``¿ Qué``: the English tokenizer leaves ¿ and ¡ on their word."""
    result: list[Piece] = []
    for token, start, end in pieces:
        marks = len(token) - len(token.lstrip("¿¡"))
        marks = min(marks, len(token) - 1) if token.strip("¿¡") else 0
        result.extend((token[index], start + index, start + index + 1) for index in range(marks))
        result.append((token[marks:], start + marks, end))
    return result


def join_adjacent(pieces: list[Piece], joins: Callable[[str, str], bool]) -> list[Piece]:
    """Each token written right after the one before it (no space) joined to it when
    ``joins(before, token)``: the English tokenizer's cut that the language's text does not make."""
    result: list[Piece] = []
    for token, start, end in pieces:
        if result and result[-1][2] == start and joins(result[-1][0], token):
            previous, previous_start, _ = result.pop()
            result.append((previous + token, previous_start, end))
        else:
            result.append((token, start, end))
    return result


def _join_abbreviation_stops(pieces: list[Piece], rules: Rules) -> list[Piece]:
    """An abbreviation of the language keeps its full stop (``bv.``, ``Sra.``), which the English
    tokenizer splits off a lowercase word it does not know, except the last stop of the sentence
    (``... enz.`` -> ``enz .``, the Penn Treebank's way, which the training text follows)."""
    result: list[Piece] = []
    for index, (token, start, end) in enumerate(pieces):
        if (token == "." and result and result[-1][2] == start and index + 1 < len(pieces)
                and result[-1][0].lower() in rules.every_abbreviation):
            previous, previous_start, _ = result.pop()
            result.append((previous + token, previous_start, end))
        else:
            result.append((token, start, end))
    return result
