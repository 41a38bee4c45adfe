"""The text front door of each language: its sentence splitter and its tokenizer, by ISO 639-1 code.

``sentences.sentence_spans``, ``tokenize_with_offsets`` and everything built on them
(``split_text``, ``Sentence.from_text``, ``tokenize``) look the language up here.  A language
without rules of its own (French, German, Russian ...: any other code of ``LANGUAGES``) gets
``GENERIC``: the rules the European languages share, without any language's abbreviations or
contractions (sentences end at ``. ! ?`` before a capital; punctuation, quotes, ``¿ ¡``, ``« »``
split from words; apostrophes inside words kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..languages import LANGUAGES, LanguageError
from . import chinese_text, dutch, european, portuguese, spanish
from .english import english_sentence_spans, english_tokenize_with_offsets

__all__ = ["FRONT_DOORS", "GENERIC", "FrontDoor", "front_door"]


@dataclass(frozen=True)
class FrontDoor:
    sentence_spans: Callable[[str], list[tuple[int, int]]]
    tokenize_with_offsets: Callable[[str], list[tuple[str, int, int]]]


def _european(rules: european.Rules) -> FrontDoor:
    return FrontDoor(partial(european.sentence_spans, rules=rules), partial(european.tokenize_with_offsets, rules=rules))


FRONT_DOORS: dict[str, FrontDoor] = {
    "en": FrontDoor(english_sentence_spans, english_tokenize_with_offsets),
    "zh": FrontDoor(chinese_text.sentence_spans, chinese_text.tokenize_with_offsets),
    "es": _european(spanish.RULES),
    "pt": _european(portuguese.RULES),
    "nl": _european(dutch.RULES),
}


GENERIC = _european(european.Rules(frozenset(), frozenset(), frozenset()))


def front_door(language: str) -> FrontDoor:
    """The front door of ``language`` (``GENERIC`` for a language without rules of its own);
    ``LanguageError`` (``unknown_language``) for a string that is no ISO 639-1 code."""
    if isinstance(language, str) and language in FRONT_DOORS:
        return FRONT_DOORS[language]
    if isinstance(language, str) and language in LANGUAGES:
        return GENERIC
    raise LanguageError("unknown_language", str(language), tuple(FRONT_DOORS),
                        "must be an ISO 639-1 code (two lowercase letters: en, fr, de ...); these have rules of "
                        f"their own: {', '.join(FRONT_DOORS)}")
