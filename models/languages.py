"""The languages the package knows, and where each bundled model lives.

``LANGUAGES`` names every language a model can be trained for: every ISO 639-1 code, the five
with a text front door of their own and a bundled model first (en, zh, es, pt, nl), then the
others, which are split and tokenized by rules shared by languages written with spaces between
words (``models.text.front_doors``).  A language is *bundled* when its release ships in
``models/weights`` (``bundled_languages()``).  A
release records its language in its metadata (``language``; releases written before there
was one are English), and ``Parser.load(language=...)`` refuses a release of another language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .iso639 import ISO_639_1
from .options import OptionError

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "TOKENS_GIVEN", "WEIGHTS", "Language", "LanguageError", "bundled_checkpoint",
           "bundled_languages", "check_known", "language_name", "lowercase_hint", "release_language"]

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_LANGUAGE = "en"
# a release's "tokens" when it was trained on tokens as its trainer cut them (onlstm train --tokens)
TOKENS_GIVEN = "given"


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
        Language("en", "English", "default.safetensors",
                 terms="research and non-commercial use only: trained on Penn Treebank-derived text (the NLTK WSJ "
                       "sample, CoNLL-2000, the PTB LM text) and the Brown corpus"),
        Language("zh", "Chinese", "zh.safetensors",
                 terms="non-commercial use only: trained on the Sinica Treebank sample (CC BY-NC-SA 2.5)"),
        Language("es", "Spanish", "es.safetensors", terms="research use: trained on CESS-ESP and CoNLL-2002 text"),
        Language("pt", "Portuguese", "pt.safetensors",
                 terms="trained on Floresta Sintá(c)tica and Mac-Morpho text, distributed with permission"),
        Language("nl", "Dutch", "nl.safetensors",
                 terms="trained on the Alpino treebank and CoNLL-2002 text, distributed with permission"),
    )
}
# every other language: a model of one's own (no release of it ships, so its file is never there)
LANGUAGES.update({code: Language(code, name, f"{code}.safetensors")
                  for code, name in ISO_639_1.items() if code not in LANGUAGES})


class LanguageError(OptionError):
    """A language that cannot be had: the ``language`` option as every front door knows it.

    An ``OptionError`` (so a front end names it as its user spells it, ``--language``), with a
    stable ``code``:

    * ``unknown_language``: not one of ``LANGUAGES``' ISO 639-1 codes;
    * ``language_unavailable``: known, but no model of it here (not bundled, not in a
      ``ParserPool``, or not the language of the ``Parser`` asked);
    * ``language_mismatch``: ``Parser.load(path, language=...)`` of a release of another language.

    Attributes: ``language`` (what was asked, also ``value``) and ``available`` (what can be asked for).
    """

    def __init__(self, code: str, language: str, available: tuple[str, ...], requirement: str):
        super().__init__("language", code, requirement, language)
        self.language = language
        self.available = tuple(available)

    def __reduce__(self):  # picklable: worker processes and Ray actors raise it
        return (LanguageError, (self.code, self.language, self.available, self.requirement))


def language_name(code: str) -> str:
    """``Spanish`` for ``es``; the code itself for a language the package does not know."""
    return LANGUAGES[code].name if code in LANGUAGES else code


def release_language(metadata: dict[str, Any]) -> str:
    """The language a release's metadata records; releases written before there was one are English."""
    return str(metadata.get("language") or DEFAULT_LANGUAGE)


def lowercase_hint(language: str) -> str:
    """`` (codes are lowercase: 'es')`` for ``ES``; empty when the lowercase form is no code either."""
    return f" (codes are lowercase: {language.lower()!r})" if str(language).lower() in LANGUAGES else ""


def check_known(language: str, available: tuple[str, ...]) -> None:
    """``LanguageError`` (``unknown_language``) unless ``language`` is one of ``LANGUAGES``' codes."""
    if language not in LANGUAGES:
        raise LanguageError("unknown_language", language, available,
                            f"must be an ISO 639-1 code{lowercase_hint(language)} of a language with a model: one of "
                            f"{', '.join(available)}")


def bundled_languages() -> tuple[str, ...]:
    """The languages whose release ships in the package, in ``LANGUAGES`` order."""
    # one listing of the folder rather than a look at each of the 183 languages' files
    files = {path.name for path in WEIGHTS.iterdir() if path.is_file()} if WEIGHTS.is_dir() else set()
    return tuple(code for code, language in LANGUAGES.items() if language.weights in files)


def bundled_checkpoint(language: str = DEFAULT_LANGUAGE) -> Path:
    """The bundled release of ``language``; ``LanguageError`` names the bundled ones otherwise."""
    available = bundled_languages()
    check_known(language, available)
    if language not in available:
        raise LanguageError("language_unavailable", language, available,
                            f"must be a language with a bundled model, one of {', '.join(available)} "
                            f"(none for {LANGUAGES[language].name} is bundled: train one on its text with "
                            f"`onlstm train --language {language} --text FILE`)")
    return WEIGHTS / LANGUAGES[language].weights
