"""What one running service holds: its settings, metrics, the parser once loaded (or why it
could not be), the micro-batcher, the text-preparation workers and the parse requests admitted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..models.parser import Parser
from .batcher import MicroBatcher
from .drain import Admission
from .errors import APIError
from .metrics import Metrics
from .preparation import Limits, PreparationPool
from .schemas import ModelName
from .settings import Settings

logger = logging.getLogger(__name__)


def checkpoint_version(parser: Parser) -> str:
    """A short content version: the prefix of the weights' SHA-256 recorded in the checkpoint."""
    recorded = parser.metadata.get("version")
    if recorded:
        return str(recorded)
    if parser.path is not None:
        try:
            from safetensors import safe_open

            with safe_open(str(parser.path), framework="pt") as opened:
                digest = (opened.metadata() or {}).get("sha256")
            if digest:
                return digest[:12]
        except Exception:  # the version is informative only; never fail serving over it
            logger.warning("could not read the checkpoint's digest from %s", parser.path)
    return "unknown"


def default_loader(settings: Settings) -> Parser:
    return Parser.load(settings.checkpoint, device=settings.device)


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    parser: Parser | None = None
    model: ModelName | None = None
    load_error: str | None = None
    batcher: MicroBatcher | None = None
    preparation: PreparationPool | None = None
    background: set[asyncio.Task] = field(default_factory=set)
    admission: Admission = field(default_factory=Admission)
    # where the model runs elsewhere (Ray Serve's replicas), why they are not all ready yet, or None
    replicas_waiting: Callable[[], Awaitable[str | None]] | None = None

    @property
    def limits(self) -> Limits:
        return Limits(self.settings.max_sentences, self.settings.max_tokens_per_sentence, self.settings.max_token_chars)

    def require_parser(self) -> tuple[Parser, MicroBatcher]:
        if self.parser is None or self.batcher is None:
            if self.load_error is not None:
                # a checkpoint that cannot be loaded will not load on a retry: no Retry-After
                raise APIError(503, "model_unavailable", f"the model could not be loaded: {self.load_error}; "
                               "fix the checkpoint (ONLSTM_CHECKPOINT) and restart the service")
            raise APIError(503, "model_loading", "the model is still loading; retry in a few seconds",
                           headers={"Retry-After": "5"})
        return self.parser, self.batcher
