"""The models one service serves, by language.

``release_plan`` says which release files a service loads: ``ONLSTM_CHECKPOINT``'s one release (its
language read from its card when it is loaded), else each language of ``ONLSTM_LANGUAGES`` (every
bundled language when unset) from its bundled release or the file given for it.  ``ServedModels``
holds what has loaded, what failed and why, and answers which model parses a request's language,
with the API's errors: 422 ``unknown_language`` or ``language_unavailable`` (naming the languages
served), 503 ``model_loading`` or ``model_unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..models.languages import DEFAULT_LANGUAGE, LANGUAGES, WEIGHTS, bundled_languages
from ..models.parser import Parser
from .errors import APIError, unavailable_language
from .schemas import LanguageStatus, ModelName
from .settings import Settings


@dataclass(frozen=True)
class Release:
    """A release file to load; ``language`` None: whatever its card records (``ONLSTM_CHECKPOINT``)."""

    language: str | None
    path: Path


def release_plan(settings: Settings) -> list[Release]:
    if settings.checkpoint is not None:
        return [Release(None, settings.checkpoint)]
    # with no release bundled at all, English is still tried, so that its absence is reported as a bad checkpoint
    chosen = settings.languages or dict.fromkeys(bundled_languages() or (DEFAULT_LANGUAGE,))
    return [Release(code, path or WEIGHTS / LANGUAGES[code].weights) for code, path in chosen.items()]


@dataclass
class ServedModel:
    language: str
    parser: Parser
    model: ModelName

    @property
    def terms(self) -> str:
        return LANGUAGES[self.language].terms if self.language in LANGUAGES else ""


@dataclass
class ServedModels:
    """The service's models by language: those configured, loaded, and failed (with the reason)."""

    # known before loading, except for ONLSTM_CHECKPOINT's release, whose language its card says
    configured: list[str] = field(default_factory=list)
    loaded: dict[str, ServedModel] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # the language (or the file's name): why it failed
    pending: int = 0  # releases still loading

    @property
    def ready(self) -> bool:
        return self.pending == 0 and not self.failures and bool(self.loaded)

    @property
    def default_language(self) -> str:
        """What a request without ``language`` is parsed in: English where served, else the first language."""
        languages = self.configured or list(self.loaded)
        return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in languages or not languages else languages[0]

    def add(self, served: ServedModel) -> None:
        if served.language not in self.configured:
            self.configured.append(served.language)
        self.loaded[served.language] = served

    def statuses(self) -> dict[str, LanguageStatus]:
        """Each configured language's state: ready, loading or failed."""
        return {language: self.status(language) for language in self.configured}

    def status(self, language: str) -> LanguageStatus:
        if language in self.loaded:
            return "ready"
        return "failed" if language in self.failures else "loading"

    def failure_message(self) -> str | None:
        if not self.failures:
            return None
        return "; ".join(f"{language}: {reason}" if language in LANGUAGES else reason
                         for language, reason in self.failures.items())

    def require(self, language: str | None) -> ServedModel:
        """The model that parses ``language`` (None: the default language), or the API's error."""
        language = language or self.default_language
        served = self.loaded.get(language)
        if served is not None:
            return served
        available = list(self.configured)
        if self.configured and language not in self.configured:
            raise unavailable_language(language, available)
        if language in self.failures or (self.pending == 0 and self.failures):
            # a release that cannot be loaded will not load on a retry: no Retry-After
            raise APIError(503, "model_unavailable", f"the model could not be loaded: {self.failure_message()}; "
                           "fix the checkpoint (ONLSTM_LANGUAGES or ONLSTM_CHECKPOINT) and restart the service",
                           available=available)
        raise APIError(503, "model_loading", "the model is still loading; retry in a few seconds",
                       headers={"Retry-After": "5"})
