"""The languages the package knows, and where each bundled model lives.

``LANGUAGES`` names every language a model can be trained for (ISO 639-1 codes); a language
is *bundled* when its release ships in ``models/weights`` (``bundled_languages()``).  A
release records its language in its metadata (``language``; releases written before there
was one are English), and ``Parser.load(language=...)`` refuses a release of another language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1
    name: str
    weights: str  # the bundled release's file name in models/weights
    # what a user of the bundled model must know of its training data's terms (empty: none beyond the card)
    terms: str = ""


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in (
        Language("en", "English", "default.safetensors"),
        Language("zh", "Chinese", "zh.safetensors",
                 terms="non-commercial use only: trained on the Sinica Treebank sample (CC BY-NC-SA 2.5)"),
        Language("es", "Spanish", "es.safetensors", terms="research use: trained on CESS-ESP and CoNLL-2002 text"),
        Language("pt", "Portuguese", "pt.safetensors",
                 terms="trained on Floresta Sintá(c)tica and Mac-Morpho text, distributed with permission"),
        Language("nl", "Dutch", "nl.safetensors",
                 terms="trained on the Alpino treebank and CoNLL-2002 text, distributed with permission"),
    )
}


class LanguageError(ValueError):
    """A language code that is unknown, or has no model here; ``code`` is stable:
    ``unknown_language`` or ``language_unavailable``; ``available`` lists what can be asked for."""

    def __init__(self, code: str, language: str, available: tuple[str, ...], message: str):
        super().__init__(message)
        self.code = code
        self.language = language
        self.available = available


def bundled_languages() -> tuple[str, ...]:
    """The languages whose release ships in the package, in ``LANGUAGES`` order."""
    return tuple(code for code, language in LANGUAGES.items() if (WEIGHTS / language.weights).is_file())


def bundled_checkpoint(language: str = DEFAULT_LANGUAGE) -> Path:
    """The bundled release of ``language``; ``LanguageError`` names the bundled ones otherwise."""
    available = bundled_languages()
    if language not in LANGUAGES:
        raise LanguageError("unknown_language", language, available,
                            f"unknown language {language!r}: give an ISO 639-1 code, one of {', '.join(available)}")
    if language not in available:
        raise LanguageError("language_unavailable", language, available,
                            f"no bundled model for {language!r} ({LANGUAGES[language].name}); "
                            f"bundled: {', '.join(available)}")
    return WEIGHTS / LANGUAGES[language].weights
