"""Request preparation: sentence splitting, tokenization and the size limits, before any model work.

Splitting and tokenizing request text is CPU work on text the client chose; a pathological
input must not stall the server.  Python's ``re`` holds the GIL for a whole match, so a thread
is not enough: text is prepared in worker processes (``PreparationPool``), each request under a
CPU-time budget (``ONLSTM_PREPARE_TIMEOUT_S``, read from /proc; wall-clock time where there is
none).  A worker over budget is killed and replaced, and the request is answered 422
``input_too_complex``; one that gets too little CPU to finish within ``ONLSTM_MAX_QUEUE_WAIT_S``
(an overloaded machine) is replaced too, and the request answered 503 with Retry-After.  The
event loop only waits on a pipe, so ``/health`` and other requests are served meanwhile.  Pre-tokenized input (``tokens``) needs
no splitting; its limits are checked in a thread of the server process.  The ``Sentence``s built
here (tokens with their character offsets) are carried through the parser to the results.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from ..models.languages import DEFAULT_LANGUAGE
from ..models.text.sentences import Sentence, split_text
from .errors import APIError

logger = logging.getLogger(__name__)

WORKER_NICENESS = 5


@dataclass(frozen=True)
class Limits:
    max_sentences: int
    max_tokens_per_sentence: int
    max_token_chars: int


@dataclass
class PreparedInput:
    sentences: list[Sentence]  # built once here, carried through the parser to the results

    @property
    def n_tokens(self) -> int:
        return sum(len(sentence.tokens) for sentence in self.sentences)


def _too_many(count: int, limits: Limits) -> APIError:
    return APIError(
        413, "too_many_sentences",
        f"the request has {count} sentences; at most {limits.max_sentences} are accepted per request "
        "(limit ONLSTM_MAX_SENTENCES): split the input over several requests",
        limit="max_sentences", value=limits.max_sentences,
    )


def check_sentence(number: int, sentence: Sentence, limits: Limits) -> None:
    """The per-sentence limits; sentences are counted from 1, as the results are shown."""
    if not sentence.tokens:
        raise APIError(422, "empty_sentence", f"sentence {number} has no tokens; remove it or add words")
    if len(sentence.tokens) > limits.max_tokens_per_sentence:
        raise APIError(
            422, "sentence_too_long",
            f"sentence {number} has {len(sentence.tokens)} tokens; at most {limits.max_tokens_per_sentence} are "
            "accepted (limit ONLSTM_MAX_TOKENS_PER_SENTENCE): split it into shorter sentences",
            limit="max_tokens_per_sentence", value=limits.max_tokens_per_sentence,
        )
    for position, token in enumerate(sentence.tokens, start=1):
        if len(token) > limits.max_token_chars:
            raise APIError(
                422, "token_too_long",
                f"token {position} of sentence {number} ({token[:30]!r}...) has {len(token)} characters; at most "
                f"{limits.max_token_chars} are accepted (limit ONLSTM_MAX_TOKEN_CHARS): remove or shorten it",
                limit="max_token_chars", value=limits.max_token_chars,
            )


def check_limits(sentences: list[Sentence], limits: Limits) -> PreparedInput:
    """The per-request and per-sentence limits, as ``APIError``s naming the limit and its value."""
    if len(sentences) > limits.max_sentences:
        raise _too_many(len(sentences), limits)
    if not sentences:
        raise APIError(422, "no_sentences", "the text has no words to parse")
    for number, sentence in enumerate(sentences, start=1):
        check_sentence(number, sentence, limits)
    return PreparedInput(sentences)


def prepare_text(text: str | None, sentences: list[str] | None, limits: Limits,
                 language: str = DEFAULT_LANGUAGE) -> PreparedInput:
    """Split ``text`` (or tokenize each of ``sentences``) as ``language`` is, and check the limits; runs in a worker."""
    if text is not None:
        return check_limits(split_text(text, language=language), limits)
    assert sentences is not None
    if len(sentences) > limits.max_sentences:  # before tokenizing them all
        raise _too_many(len(sentences), limits)
    return check_limits([Sentence.from_text(sentence, language=language) for sentence in sentences], limits)


def prepare_tokens(tokens: list[list[str]], limits: Limits) -> PreparedInput:
    if len(tokens) > limits.max_sentences:
        raise _too_many(len(tokens), limits)
    return check_limits([Sentence.from_tokens(sentence) for sentence in tokens], limits)


# --- the worker processes ----------------------------------------------------------------


def _worker_main(connection: Connection) -> None:
    """A worker's loop: (text, sentences, limits, language) in; ("ok", PreparedInput) or ("error", APIError) out."""
    # below the server process in CPU priority: on a busy machine, preparing text never delays
    # the event loop that answers /health and the other requests
    os.nice(WORKER_NICENESS)
    # Ctrl+C in a terminal reaches the whole process group: the server stops its workers itself
    # (SIGTERM keeps its default, which multiprocessing relies on at exit)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        answer: tuple[str, PreparedInput | APIError | str]
        try:
            answer = ("ok", prepare_text(*job))
        except APIError as error:
            answer = ("error", error)
        except Exception:
            answer = ("failed", traceback.format_exc())
        connection.send(answer)


class PreparationTimeout(Exception):
    """The worker used more than the request's CPU budget."""


class PreparationStalled(Exception):
    """The worker got too little CPU to finish within the wall-clock bound (an overloaded machine)."""


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int) -> list[bytes]:
    """The fields of Linux's /proc/PID/stat from the third on (state, parent, ...; ``proc(5)`` numbers
    them from 1): the second, the command name in parentheses, may itself hold spaces and ")".
    Raises OSError where there is no such file."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used, from Linux's /proc; None elsewhere."""
    try:
        fields = stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # fields 14 and 15: utime, stime
    except (OSError, IndexError, ValueError):
        return None


class _Worker:
    POLL_SECONDS = 0.02

    def __init__(self, context: multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext):
        ours, theirs = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(theirs,), daemon=True, name="onlstm-prepare")
        self.process.start()
        theirs.close()
        self.connection = ours

    def call(self, job: tuple, budget: float, wall_limit: float) -> tuple:
        """Blocking (run it in a thread): the worker's answer; ``PreparationTimeout`` once the worker
        has used ``budget`` seconds of CPU on this job (wall-clock time where /proc is missing),
        ``PreparationStalled`` after ``wall_limit`` seconds whatever it used."""
        pid = self.process.pid
        assert pid is not None
        cpu_at_start = cpu_seconds(pid)
        started = time.monotonic()
        self.connection.send(job)
        while not self.connection.poll(self.POLL_SECONDS):
            now = cpu_seconds(pid) if cpu_at_start is not None else None
            used = now - cpu_at_start if now is not None and cpu_at_start is not None else time.monotonic() - started
            if used > budget:
                raise PreparationTimeout
            if time.monotonic() - started > wall_limit:
                raise PreparationStalled
        return self.connection.recv()

    def close(self, wait: float = 1.0) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(wait)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()


class PreparationPool:
    """``workers`` processes that prepare request text, each request within ``budget`` seconds.

    Workers are forked from a fork server that has imported this module once, so starting or
    replacing one takes milliseconds, and they share no threads or locks with the server.
    """

    def __init__(self, workers: int, budget: float, max_wait: float):
        self.budget, self.max_wait, self.size = budget, max_wait, workers
        self._context: multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload([__name__])
        else:  # Windows: each worker starts a fresh interpreter (slower to replace, same behaviour)
            self._context = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._replacing: set[asyncio.Task] = set()

    def _new_worker(self) -> _Worker:
        worker = _Worker(self._context)
        with self._lock:
            self._all.add(worker)
        return worker

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(await asyncio.to_thread(self._new_worker))

    async def prepare(self, text: str | None, sentences: list[str] | None, limits: Limits,
                      language: str = DEFAULT_LANGUAGE) -> PreparedInput:
        assert self._idle is not None, "start() the pool first"
        try:
            worker = await asyncio.wait_for(self._idle.get(), self.max_wait)
        except asyncio.TimeoutError:
            raise APIError(503, "overloaded", f"every text-preparation worker was busy for {self.max_wait:g} s; "
                           "retry later", headers={"Retry-After": "5"}) from None
        started = time.perf_counter()
        try:
            answer = await asyncio.to_thread(worker.call, (text, sentences, limits, language), self.budget,
                                             self.max_wait)
        except (PreparationTimeout, PreparationStalled, EOFError, OSError) as error:
            await self._replace(worker)
            if isinstance(error, PreparationTimeout):
                raise APIError(
                    422, "input_too_complex",
                    f"splitting and tokenizing this input took more than {self.budget:g} s of CPU (limit "
                    "ONLSTM_PREPARE_TIMEOUT_S); send shorter text, or pre-tokenized input in 'tokens'",
                    limit="prepare_timeout_s", value=int(self.budget) if float(self.budget).is_integer() else None,
                ) from None
            if isinstance(error, PreparationStalled):
                raise APIError(503, "overloaded", f"preparing the input took more than {self.max_wait:g} s on an "
                               "overloaded machine; retry later", headers={"Retry-After": "5"}) from None
            raise RuntimeError("a text-preparation worker died; it has been replaced") from error
        except BaseException:
            # cancelled while the worker runs (the client left): its answer would be read by the
            # next request, so the worker is replaced rather than reused
            task = asyncio.get_running_loop().create_task(self._replace(worker))
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)
            raise
        self._idle.put_nowait(worker)
        logger.debug("prepared in %.1f ms", 1000 * (time.perf_counter() - started))
        status, value = answer
        if status == "ok":
            return value
        if status == "error":
            raise value
        raise RuntimeError(f"preparing the input failed in the worker:\n{value}")

    def _swap(self, worker: _Worker) -> _Worker:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        return self._new_worker()

    async def _replace(self, worker: _Worker) -> None:
        replacement = await asyncio.to_thread(self._swap, worker)
        assert self._idle is not None
        self._idle.put_nowait(replacement)

    def stop(self) -> None:
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.close()
