"""What one running service holds: its settings, metrics, its models by language once loaded (or
why they could not be), the micro-batcher, the text-preparation workers and the parse requests admitted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..models.parser import Parser
from .batcher import MicroBatcher
from .drain import Admission
from .errors import APIError
from .languages import ServedModel, ServedModels
from .metrics import Metrics
from .preparation import Limits, PreparationPool
from .settings import Settings

logger = logging.getLogger(__name__)


def default_loader(path: Path, settings: Settings) -> Parser:
    return Parser.load(path, device=settings.device)


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    models: ServedModels = field(default_factory=ServedModels)
    batcher: MicroBatcher | None = None
    preparation: PreparationPool | None = None
    background: set[asyncio.Task] = field(default_factory=set)
    admission: Admission = field(default_factory=Admission)
    # where the model runs elsewhere (Ray Serve's replicas), why they are not all ready yet, or None
    replicas_waiting: Callable[[], Awaitable[str | None]] | None = None

    @property
    def limits(self) -> Limits:
        return Limits(self.settings.max_sentences, self.settings.max_tokens_per_sentence, self.settings.max_token_chars)

    def require_model(self, language: str | None) -> tuple[ServedModel, MicroBatcher]:
        """The model of ``language`` (None: the default language) and the batcher; the API's error otherwise."""
        served = self.models.require(language)
        if self.batcher is None:  # set in the lifespan, before any model loads
            raise APIError(503, "model_loading", "the service is starting; retry in a few seconds",
                           headers={"Retry-After": "5"})
        return served, self.batcher
