"""``ParserPool``: one ``Parser`` per language, for the front doors that serve several languages.

    from onlstm import ParseOptions
    from onlstm.models.pool import ParserPool

    pool = ParserPool()                                    # every bundled language, loaded now
    pool.languages                                         # ('en', 'es', ...), LANGUAGES order
    pool.parse_many(["El gato duerme."], ParseOptions(language="es"))
    pool.parse_text("The cat sat. The dog ran.")           # no language: pool.default_language (en)
    pool.parser("es").parse("El gato duerme.")             # the Spanish Parser itself

A ``Parser`` parses one language (``Parser.resolve`` refuses another); the pool chooses the
parser by the options' ``language`` and hands the call to it, so a result is exactly what
that language's ``Parser`` gives (its ``language`` and ``model`` recorded on it).

Contract (Ray and NLTK build on exactly this; the HTTP service keeps its own table of the languages
it serves, ``service/languages.py``):

* ``ParserPool(languages=None, device="cpu", *, lazy=False, checkpoints=None)``.
  ``languages``: the ones served (``None``: every bundled language, ``bundled_languages()``,
  plus the keys of ``checkpoints``).  ``checkpoints``: a release file per language, served
  instead of the bundled one; each must be a release of that language.  Every language is
  checked when the pool is built, loaded or not: an unknown one, or one with neither a
  bundled model nor a checkpoint, raises ``LanguageError`` then (its ``available`` names
  what can be had).  ``ParserPool.of(*parsers)`` wraps parsers already loaded (one per language).
* Loading policy.  Eager (``lazy=False``, the default): every parser is loaded in the
  constructor, so a broken release fails at start (a service's start-up, not its first
  request) and the memory of every model (a few hundred MB each) is paid up front.  Lazy
  (``lazy=True``): a language is loaded on its first use (``parser``, ``resolve``, a parse),
  once: under a per-language lock, concurrent first uses of one language wait for one load,
  and different languages load side by side.  A load that fails raises to the caller that
  triggered it and is not remembered: the next use tries again.  A loaded parser stays
  loaded for the pool's life.
* ``languages`` (served, in ``LANGUAGES`` order), ``loaded`` (loaded now), ``default_language``
  (``en`` when served, else the first served): what a call without a language gets.
* ``parser(language=None) -> Parser``: ``None`` is ``default_language``.
* ``resolve(options=None, **values) -> ParseOptions``: the options resolved by their
  language's parser, the language filled in (the service's batch key: equal keys, one parser).
* ``parse(...)``, ``parse_many(sentences, options=None, *, batch_size=64, with_perplexity=True,
  **values)``, ``parse_text(text, options=None, **values)``: ``Parser``'s, dispatched on
  ``options.language or default_language``.
* Errors: a language not served is ``LanguageError`` (an ``OptionError``, ``option ==
  "language"``): ``unknown_language`` (not an ISO 639-1 code the package knows) or
  ``language_unavailable`` (known, not served here); ``available`` lists ``languages``.
  Other options: the parser's ``OptionError``; loading: ``CheckpointError``.
* Thread safety: every method may be called from several threads at once; a ``Parser`` is
  then used from several threads, which torch inference allows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .languages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    LanguageError,
    bundled_checkpoint,
    bundled_languages,
    check_known,
    language_name,
)
from .options import ParseOptions
from .parser import Parser, ParseResult, SentenceLike

__all__ = ["ParserPool"]

logger = logging.getLogger(__name__)


class ParserPool:
    """One ``Parser`` per served language, chosen by the options' ``language`` (see the module doc)."""

    def __init__(self, languages: Iterable[str] | None = None, device: str | torch.device = "cpu", *,
                 lazy: bool = False, checkpoints: Mapping[str, str | Path] | None = None):
        self.device = device
        self.lazy = lazy
        self._checkpoints = {language: Path(path) for language, path in (checkpoints or {}).items()}
        self.languages = self._served(languages)
        self.default_language = DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in self.languages else self.languages[0]
        self._parsers: dict[str, Parser] = {}
        self._locks = {language: threading.Lock() for language in self.languages}
        if not lazy:
            for language in self.languages:
                self.parser(language)

    @classmethod
    def of(cls, *parsers: Parser) -> ParserPool:
        """A pool of parsers already loaded, one per language (their own languages)."""
        if not parsers:
            raise ValueError("ParserPool.of takes at least one Parser")
        by_language: dict[str, Parser] = {}
        for parser in parsers:
            if parser.language in by_language:
                raise ValueError(f"two parsers of {parser.language!r} given; a pool holds one per language")
            by_language[parser.language] = parser
        pool = cls.__new__(cls)
        pool.device, pool.lazy, pool._checkpoints = parsers[0].device, False, {}
        pool.languages = tuple(sorted(by_language, key=_language_order))
        pool.default_language = DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in by_language else pool.languages[0]
        pool._parsers = by_language
        pool._locks = {language: threading.Lock() for language in pool.languages}
        return pool

    def _served(self, languages: Iterable[str] | None) -> tuple[str, ...]:
        """The served languages in ``LANGUAGES`` order, each checked to have a model (bundled or given)."""
        available = tuple(sorted(set(bundled_languages()) | set(self._checkpoints), key=_language_order))
        for language in self._checkpoints:
            check_known(language, available)
        asked = available if languages is None else tuple(dict.fromkeys(languages))
        if not asked:
            raise ValueError("a ParserPool serves at least one language")
        for language in asked:
            check_known(language, available)
            if language not in available:
                bundled_checkpoint(language)  # raises language_unavailable, naming the bundled ones
        return tuple(sorted(asked, key=_language_order))

    @property
    def loaded(self) -> tuple[str, ...]:
        """The languages whose parser is loaded now."""
        return tuple(language for language in self.languages if language in self._parsers)

    def parser(self, language: str | None = None) -> Parser:
        """The parser of ``language`` (``None``: ``default_language``), loaded now if the pool is lazy."""
        language = language or self.default_language
        loaded = self._parsers.get(language)
        if loaded is not None:
            return loaded
        if language not in self._locks:
            check_known(language, self.languages)
            raise LanguageError("language_unavailable", language, self.languages,
                                f"must be one of the languages served here: {', '.join(self.languages)} "
                                f"(no {language_name(language)} model is loaded)")
        with self._locks[language]:  # one load per language, however many threads ask at once
            if language not in self._parsers:
                self._parsers[language] = self._load(language)
        return self._parsers[language]

    def _load(self, language: str) -> Parser:
        path = self._checkpoints.get(language)
        logger.info("loading the %s model (%s)", language_name(language), path or "bundled")
        return Parser.load(path, device=self.device, language=language)

    def resolve(self, options: ParseOptions | None = None, **values: Any) -> ParseOptions:
        """``options`` (keyword values over them) resolved by their language's parser, the language filled in."""
        options = ParseOptions.of(options, **values)
        return self.parser(options.language).resolve(options)

    def parse(self, sentence: SentenceLike | Sequence[SentenceLike], options: ParseOptions | None = None, *,
              batch_size: int = 64, with_perplexity: bool = True, **values: Any) -> ParseResult | list[ParseResult]:
        """``Parser.parse`` by the parser of the options' language."""
        options = ParseOptions.of(options, **values)
        return self.parser(options.language).parse(sentence, options, batch_size=batch_size,
                                                   with_perplexity=with_perplexity)

    def parse_many(self, sentences: Iterable[SentenceLike], options: ParseOptions | None = None, *,
                   batch_size: int = 64, with_perplexity: bool = True, **values: Any) -> list[ParseResult]:
        """``Parser.parse_many`` by the parser of the options' language."""
        options = ParseOptions.of(options, **values)
        return self.parser(options.language).parse_many(sentences, options, batch_size=batch_size,
                                                        with_perplexity=with_perplexity)

    def parse_text(self, text: str, options: ParseOptions | None = None, *, batch_size: int = 64,
                   with_perplexity: bool = True, **values: Any) -> list[ParseResult]:
        """``Parser.parse_text`` by the parser of the options' language (split and tokenized as that language)."""
        options = ParseOptions.of(options, **values)
        return self.parser(options.language).parse_text(text, options, batch_size=batch_size,
                                                        with_perplexity=with_perplexity)

    def __repr__(self) -> str:
        return f"ParserPool(languages={self.languages!r}, loaded={self.loaded!r})"


def _language_order(language: str) -> int:
    return list(LANGUAGES).index(language) if language in LANGUAGES else len(LANGUAGES)

