"""Draining on SIGTERM, so that a replica leaves a fleet without losing a request.

``onlstm serve`` runs a ``DrainingServer``: its first SIGTERM (or Ctrl+C) does not stop the
server at once but starts ``drain``:

* ``/ready`` answers 503 (``"status": "draining"``), so balancers stop sending; ``/health``
  stays 200, and the port stays open, until the process exits;
* a parse request that arrives now is answered 503 ``shutting_down`` with ``Retry-After`` (it
  has not been parsed: a balancer or a client may send it to another replica);
* the requests already in the service are parsed while they can finish by the deadline,
  ``ONLSTM_DRAIN_TIMEOUT_S`` after the signal; the queued ones that cannot (at the model's
  recent rate), and at the deadline any still queued, are refused the same way; batches already
  running finish;
* the counts of finished and refused requests are logged, and only then does uvicorn's own
  shutdown run (close the port and the idle connections, then the app's lifespan).

A second signal during the drain stops at once, as uvicorn does without one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from .batcher import ShuttingDown
from .errors import APIError

if TYPE_CHECKING:
    from .state import ServiceState

logger = logging.getLogger(__name__)

# After the deadline, how long the batches still running may take before the drain gives up
# waiting for them (uvicorn's graceful shutdown then still waits its own timeout).
RUNNING_BATCH_GRACE_S = 10.0


def shutting_down_error() -> APIError:
    """The answer to a parse request that arrives while the service drains: the batcher's own refusal."""
    refusal = ShuttingDown()
    return APIError(503, refusal.code, str(refusal), headers={"Retry-After": str(refusal.retry_after)})


@dataclass
class Admission:
    """Parse requests in the service, and whether new ones are still admitted."""

    in_flight: int = 0
    draining: bool = False
    finished: int = 0  # answered in full since the drain began
    refused: int = 0  # answered 503 shutting_down since the drain began
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        """A parse request arrives: counted, or refused (503 shutting_down) once draining."""
        if self.draining:
            self.refused += 1
            raise shutting_down_error()
        self.in_flight += 1
        self._idle.clear()

    def leave(self, error: BaseException | None) -> None:
        """It is answered: in full (``error`` None), or with ``error``."""
        self.in_flight -= 1
        if self.draining:
            if error is None:
                self.finished += 1
            elif isinstance(error, APIError) and error.code == "shutting_down":
                self.refused += 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        if self.in_flight:
            await self._idle.wait()


async def drain(state: ServiceState, timeout: float) -> None:
    """Refuse new parse requests, finish or refuse those in the service within ``timeout`` s, log the counts."""
    started = time.monotonic()
    deadline = started + timeout
    admission: Admission = state.admission
    admission.draining = True
    state.metrics.ready.set(0)
    logger.info("draining: /ready answers 503 and new parse requests 503 shutting_down; %d in the service "
                "get up to %g s", admission.in_flight, timeout)
    if state.batcher is not None:
        state.batcher.drain(deadline)
    try:
        await asyncio.wait_for(admission.wait_idle(), timeout + RUNNING_BATCH_GRACE_S)
    except asyncio.TimeoutError:
        logger.warning("drain: %d requests still unanswered %g s after the deadline", admission.in_flight,
                       RUNNING_BATCH_GRACE_S)
    logger.info("drained in %.1f s: %d requests finished, %d refused with 503 shutting_down",
                time.monotonic() - started, admission.finished, admission.refused)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first SIGTERM or SIGINT drains the app (``drain``) before the usual shutdown."""

    def __init__(self, config: uvicorn.Config, state: ServiceState, drain_timeout: float):
        super().__init__(config)
        self.state, self.drain_timeout = state, drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.started and not self.should_exit and not self.state.admission.draining and self._loop is not None:
            # a signal handler may run anywhere in the loop's own code: the drain is scheduled, not started here
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        if self.state.admission.draining:
            return
        self.state.admission.draining = True  # a second signal from here on stops at once

        async def drain_then_exit() -> None:
            try:
                await drain(self.state, self.drain_timeout)
            finally:
                self.should_exit = True

        assert self._loop is not None
        self._draining = self._loop.create_task(drain_then_exit(), name="onlstm-drain")
