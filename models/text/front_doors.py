"""The text front door of each language: its sentence splitter and its tokenizer, by ISO 639-1 code.

``sentences.sentence_spans``, ``tokenize_with_offsets`` and everything built on them
(``split_text``, ``Sentence.from_text``, ``tokenize``) look the language up here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..languages import LANGUAGES, LanguageError
from . import chinese_text, dutch, european, portuguese, spanish
from .sentences import english_sentence_spans, english_tokenize_with_offsets

__all__ = ["FRONT_DOORS", "FrontDoor", "front_door"]


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


def front_door(language: str) -> FrontDoor:
    """The front door of ``language``; ``LanguageError`` (``unknown_language``) for a code it has none for."""
    try:
        return FRONT_DOORS[language]
    except (KeyError, TypeError):
        known = tuple(code for code in LANGUAGES if code in FRONT_DOORS)
        raise LanguageError("unknown_language", str(language), known,
                            f"must be an ISO 639-1 code of a language with a text front door: one of {', '.join(known)}"
                            ) from None
