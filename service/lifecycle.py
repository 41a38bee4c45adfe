"""The service's lifespan: start the batcher and the text-preparation workers, load the model in
the background (``/health`` answers at once, ``/ready`` says 503 until it is loaded, or for good
with the reason if it cannot be), and stop it all on shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..models.checkpoint import CheckpointError
from ..models.options import ParseOptions
from ..models.parser import Parser, ParseResult
from ..models.text.sentences import Sentence
from .batcher import MicroBatcher
from .preparation import PreparationPool
from .schemas import ModelName
from .settings import Settings
from .state import ServiceState, checkpoint_version

logger = logging.getLogger(__name__)

ParserLoader = Callable[[Settings], Parser]


def describe_load_failure(error: BaseException, settings: Settings) -> str:
    """One sentence for /ready and the log, the same for every kind of bad checkpoint file."""
    where = settings.checkpoint or "the bundled model"
    if isinstance(error, CheckpointError):
        hint = "" if settings.checkpoint else "; set ONLSTM_CHECKPOINT (or --checkpoint) to a release checkpoint"
        return f"{error}{hint}"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return f"cannot read {where}: {error.strerror or error}; point ONLSTM_CHECKPOINT at a release checkpoint file"
    return (f"{where} is not a usable release checkpoint ({type(error).__name__}: {error}); "
            "point ONLSTM_CHECKPOINT at a release checkpoint saved by `onlstm train`")


async def load_model(state: ServiceState, load: ParserLoader, executor: Executor) -> None:
    """Load and warm the model in ``executor``, the thread(s) that will parse: torch's OpenMP
    threads belong to the thread that first used them, and a second thread running torch
    operations (here, the loading) leaves two thread teams competing for the cores (measured on
    2 cores: a one-sentence parse took 20 ms instead of 13 ms from then on)."""
    settings = state.settings
    started = time.perf_counter()

    def load_and_warm() -> Parser:
        parser = load(settings)
        parser.parse([["warm", "up"]])  # the first call pays one-off costs; users should not
        return parser

    try:
        parser = await asyncio.get_running_loop().run_in_executor(executor, load_and_warm)
    except Exception as error:
        state.load_error = describe_load_failure(error, settings)
        logger.error("cannot serve: %s", state.load_error,
                     exc_info=not isinstance(error, (CheckpointError, OSError)))
        return
    version = checkpoint_version(parser)
    state.model = ModelName(name=parser.name, version=version)
    state.parser = parser
    # the hundreds of thousands of objects loaded so far (torch, the model, the libraries) live as
    # long as the process: out of the garbage collector's sight, a full collection takes
    # milliseconds instead of tens of them, so it cannot stall the event loop
    gc.collect()
    gc.freeze()
    state.metrics.ready.set(1)
    logger.info("model %s (version %s, %d layers) loaded from %s in %.1f s", parser.name, version, parser.n_layers,
                parser.path, time.perf_counter() - started)


# make_batcher(state, executor): what parse requests are submitted to (``submit(items, key)``,
# ``start()``, ``stop()``); Ray Serve's ingress (onlstm/ray_serve.py) sends them to model replicas
BatcherFactory = Callable[[ServiceState, Executor], Any]


def local_batcher(settings: Settings, executor: Executor, parser: Callable[[], Parser | None],
                  on_batch: Callable[[int, int, float], None] | None = None) -> MicroBatcher:
    """The micro-batcher of one process, parsing with ``parser()`` in ``executor``, as ``settings`` bound it."""

    def run_parse(items: list[Sentence], options: ParseOptions) -> list[ParseResult]:
        loaded = parser()
        assert loaded is not None  # requests reach the batcher only once the model is loaded
        return loaded.parse_many(items, options, batch_size=settings.batch_max_sentences)

    return MicroBatcher(
        run_parse, executor,
        max_sentences=settings.batch_max_sentences,
        max_wait=settings.batch_max_wait_ms / 1000,
        refill_wait=settings.batch_refill_wait_ms / 1000,
        concurrent_batches=settings.concurrent_batches,
        max_queue_wait=settings.max_queue_wait_s,
        max_queued=settings.max_queued_requests,
        on_batch=on_batch,
    )


def make_lifespan(load: ParserLoader, make_batcher: BatcherFactory | None = None):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServiceState = app.state.service
        settings = state.settings
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        executor = ThreadPoolExecutor(max_workers=settings.concurrent_batches, thread_name_prefix="onlstm-parse")
        if make_batcher is None:
            state.batcher = local_batcher(settings, executor, lambda: state.parser, state.metrics.observe_batch)
        else:
            state.batcher = make_batcher(state, executor)
        state.batcher.start()
        state.preparation = PreparationPool(settings.prepare_workers, settings.prepare_timeout_s,
                                            settings.max_queue_wait_s)
        await state.preparation.start()
        loading = asyncio.get_running_loop().create_task(load_model(state, load, executor), name="onlstm-load-model")
        state.background.add(loading)
        loading.add_done_callback(state.background.discard)
        try:
            yield
        finally:
            await state.batcher.stop()
            await asyncio.to_thread(state.preparation.stop)
            # a load still running cannot be interrupted (it is in a thread); do not wait for it
            executor.shutdown(wait=False, cancel_futures=True)

    return lifespan
