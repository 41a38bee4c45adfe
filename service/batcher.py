"""Cross-request micro-batching.

Requests are queued; a collector task takes the oldest one and lets others join it
for up to ``max_wait`` seconds or until the batch holds ``max_sentences`` sentences
(``max_wait`` 0, the default: the requests already queued, which are those that arrived
while the model was busy with the previous batch; a lone request goes at once),
then runs ``parse`` once on all their sentences in a thread pool (the model sorts them
by length into padded batches) and hands each request its own slice of the results.
Only requests with the same parse options (layer, decoder, punctuation, prior) share a
batch, because those options apply to a whole ``Parser.parse`` call.

At most ``concurrent_batches`` model calls run at once; while they all run, new
requests pile up in the queue, so batches grow exactly when the service is busy.

Under load a batch also waits up to ``refill_wait`` seconds for the clients of the batch
that has just finished (within ``REFILL_RECENT``) to come back: clients answered together
send their next requests a few milliseconds apart, and without the wait the first of them
would go alone and the others queue behind it, a batch of one, then a batch of the rest.
It waits for as many requests as that batch held plus those that were already queued when
it finished (another group of clients, which the wait merges with the first).  A lone client
never waits (its previous batch held one request).
A request still queued after ``max_queue_wait`` seconds is dropped and its caller
gets ``QueueTimeout`` (the service answers 503 with Retry-After).

``drain(deadline)`` (on SIGTERM) keeps parsing what can finish by the deadline and refuses
the rest with ``ShuttingDown``, which has not been parsed and may go to another replica: at
once the queued requests that the recent rate of the model cannot reach in time, new ones
likewise, and at the deadline whatever still waits.  Batches already running finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# parse(sentences, key) -> one result per sentence, in order; runs in a worker thread. The key is the one
# the batch's requests were submitted with, of the caller's own type (the service's: ParseOptions)
ParseFunction = Callable[[list[Any], Any], Sequence[Any]]
# on_batch(requests, sentences, seconds): for metrics
BatchObserver = Callable[[int, int, float], None]


class BatcherUnavailable(RuntimeError):
    """The batcher cannot take the request (queue full, or shutting down); ``code`` is the API's."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class QueueTimeout(BatcherUnavailable):
    """The request waited in the queue longer than allowed and was dropped."""


class ShuttingDown(BatcherUnavailable):
    """The service is draining and the request was not parsed: safe to send again, to another replica."""

    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the service is shutting down and did not parse this request; send it again", 1)


@dataclass(eq=False)
class _Job:
    items: list[Any]
    key: Hashable
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued -> running, or queued -> abandoned


# A batch refills only to the size of a batch that finished this recently (seconds): after a
# quiet spell a lone request goes at once.
REFILL_RECENT = 0.05
# Weight of the newest batch in the running estimate of the model's seconds per sentence
RATE_SMOOTHING = 0.3


class MicroBatcher:
    def __init__(
        self,
        parse: ParseFunction,
        executor: Executor,
        max_sentences: int = 64,
        max_wait: float = 0.0,
        refill_wait: float = 0.0,
        concurrent_batches: int = 1,
        max_queue_wait: float = 30.0,
        max_queued: int = 1000,
        on_batch: BatchObserver | None = None,
    ):
        self._parse = parse
        self._executor = executor
        self.max_sentences = max_sentences
        self.max_wait = max_wait
        self.refill_wait = refill_wait
        self._last_requests = 0  # requests in the last batch that finished, and when (time.monotonic)
        self._last_finished = float("-inf")
        self.max_queue_wait = max_queue_wait
        self.max_queued = max_queued
        self._on_batch = on_batch
        self._pending: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrent_batches)
        self._running: set[asyncio.Task] = set()
        self._collector: asyncio.Task | None = None
        self._closed = False
        self._seconds_per_sentence: float | None = None  # the model's recent rate, for the drain
        self._drain_deadline: float | None = None  # time.monotonic() by which a draining batcher is done

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._collector = asyncio.get_running_loop().create_task(self._collect(), name="onlstm-batcher")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, fail queued requests, and let running batches finish (up to ``grace`` s)."""
        self._closed = True
        if self._collector is not None:
            self._collector.cancel()
            try:
                await self._collector
            except asyncio.CancelledError:
                pass
        self._refuse(list(self._pending))
        self._pending.clear()
        if self._running:
            await asyncio.wait(self._running, timeout=grace)

    def drain(self, deadline: float) -> None:
        """Parse what can finish by ``deadline`` (``time.monotonic()``) and refuse the rest."""
        self._drain_deadline = deadline
        self._refuse_late()
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, deadline - time.monotonic()), lambda: self._refuse(list(self._pending)))

    def _refuse_late(self) -> None:
        """While draining, refuse the queued jobs that the model's recent rate cannot finish by the
        deadline, the oldest served first (none while no rate is known yet)."""
        if self._drain_deadline is None or self._seconds_per_sentence is None:
            return
        room = (self._drain_deadline - time.monotonic()) / self._seconds_per_sentence  # sentences
        ahead = 0
        late = []
        for job in self._pending:
            if job.state != "queued":
                continue
            if ahead + len(job.items) > room:
                late.append(job)
            else:
                ahead += len(job.items)
        self._refuse(late)

    def _refuse(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.state == "queued" and not job.future.done():
                job.state = "abandoned"
                job.future.set_exception(ShuttingDown())

    @property
    def queued(self) -> int:
        return sum(1 for job in self._pending if job.state == "queued")

    # --- the caller's side -----------------------------------------------------------

    async def submit(self, items: list[Any], key: Hashable) -> list[Any]:
        """Results for ``items`` (parsed with options ``key``), in order."""
        if self._closed:
            raise ShuttingDown()
        if not items:
            return []
        if self.queued >= self.max_queued:
            raise BatcherUnavailable(f"the service is busy ({self.max_queued} requests waiting); retry shortly", 1)
        job = _Job(items=list(items), key=key, future=asyncio.get_running_loop().create_future())
        # mark a failure as seen even when the caller has gone (no "exception never retrieved" noise)
        job.future.add_done_callback(lambda future: future.cancelled() or future.exception())
        self._pending.append(job)
        self._refuse_late()  # while draining, this one too if it cannot be parsed in time
        self._arrived.set()
        try:
            # shield: a timeout must not cancel the shared future before we decide what to do
            return await asyncio.wait_for(asyncio.shield(job.future), timeout=self.max_queue_wait)
        except (TimeoutError, asyncio.TimeoutError):
            if job.state == "running":  # it made it into a batch: the answer is on its way
                return await job.future
            job.state = "abandoned"
            raise QueueTimeout(
                f"the request waited {self.max_queue_wait:g} s in the queue without being parsed; "
                "the service is overloaded, retry later",
                max(1, round(self.max_queue_wait / 2)),
            ) from None
        except asyncio.CancelledError:
            # the client went away: never spend model time on it
            if job.state == "queued":
                job.state = "abandoned"
            raise

    # --- the collector ---------------------------------------------------------------

    def _take(self, key: Hashable | None, room: int) -> _Job | None:
        """Remove and return the oldest queued job (with ``key``, fitting ``room``), dropping abandoned ones."""
        for job in list(self._pending):
            if job.state != "queued":
                self._pending.remove(job)
                continue
            if key is None or (job.key == key and len(job.items) <= room):
                self._pending.remove(job)
                return job
        return None

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                batch = await self._gather(loop)
            except BaseException:
                self._slots.release()
                raise
            for job in batch:
                job.state = "running"
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Job]:
        first = self._take(None, 0)
        while first is None:
            self._arrived.clear()
            await self._arrived.wait()
            first = self._take(None, 0)
        batch, size = [first], len(first.items)
        started = loop.time()
        deadline = started + self.max_wait
        expected = 0
        if time.monotonic() - self._last_finished < REFILL_RECENT:
            # the last batch's clients, and the requests that queued while it ran and may join this one
            expected = self._last_requests + sum(
                1 for job in (first, *self._pending)
                if job.state == "queued" and job.key == first.key and job.queued_at < self._last_finished
            )
        refill_deadline = started + self.refill_wait
        while size < self.max_sentences:
            job = self._take(first.key, self.max_sentences - size)
            if job is not None:
                batch.append(job)
                size += len(job.items)
                continue
            until = deadline
            if len(batch) < expected:
                until = max(deadline, refill_deadline)
            remaining = until - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except (TimeoutError, asyncio.TimeoutError):
                break
        return batch

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        items = [item for job in batch for item in job.items]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._parse, items, batch[0].key)
            if len(results) != len(items):
                raise RuntimeError(f"parse returned {len(results)} results for {len(items)} sentences")
        except Exception as error:  # every waiting request must hear about it, not hang
            logger.exception("a batch of %d sentences failed", len(items))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._last_requests, self._last_finished = len(batch), time.monotonic()
            self._slots.release()
        seconds = time.perf_counter() - started
        rate = seconds / len(items)
        previous = self._seconds_per_sentence
        self._seconds_per_sentence = rate if previous is None else previous + RATE_SMOOTHING * (rate - previous)
        self._refuse_late()  # while draining, a fresher rate may reach less in time
        if self._on_batch is not None:
            self._on_batch(len(batch), len(items), seconds)
        start = 0
        for job in batch:
            end = start + len(job.items)
            if not job.future.done():
                job.future.set_result(list(results[start:end]))
            start = end
        logger.debug("batch: %d requests, %d sentences, %.1f ms", len(batch), len(items),
                     1000 * (time.perf_counter() - started))
