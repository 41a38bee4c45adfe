"""The service's lifespan: start the batcher and the text-preparation workers, load the models of
every language served in the background, one after the other (``/health`` answers at once,
``/ready`` says 503 until they are all loaded, or for good with the reason if one cannot be), and
stop it all on shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..models.checkpoint import CheckpointError
from ..models.languages import language_name
from ..models.options import ParseOptions
from ..models.parser import Parser, ParseResult
from ..models.text.sentences import Sentence
from .batcher import MicroBatcher
from .languages import Release, ServedModel, ServedModels, release_plan
from .preparation import PreparationPool
from .schemas import ModelName
from .settings import Settings
from .state import ServiceState

logger = logging.getLogger(__name__)

# load_parser(path, settings): one release as a Parser (tests put their own in)
ParserLoader = Callable[[Path, Settings], Parser]


def describe_load_failure(error: BaseException, release: Release) -> str:
    """One sentence for /ready and the log, the same for every kind of bad checkpoint file."""
    where = release.path
    if isinstance(error, CheckpointError):
        hint = "" if release.path.exists() else "; set ONLSTM_LANGUAGES (code=path) or ONLSTM_CHECKPOINT to a release"
        return f"{error}{hint}"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return f"cannot read {where}: {error.strerror or error}; point ONLSTM_CHECKPOINT at a release checkpoint file"
    return (f"{where} is not a usable release checkpoint ({type(error).__name__}: {error}); "
            "point ONLSTM_CHECKPOINT at a release checkpoint saved by `onlstm train`")


def load_release(release: Release, settings: Settings, load: ParserLoader) -> ServedModel:
    """One release, loaded and warmed (runs in the parse thread); ``LanguageMismatch`` for a release of
    another language than the one it was configured for."""
    parser = load(release.path, settings)
    if release.language is not None and parser.language != release.language:
        raise LanguageMismatch(f"{release.path} is a release of {language_name(parser.language)} "
                               f"({parser.language!r}), not of {language_name(release.language)}: give "
                               f"ONLSTM_LANGUAGES {release.language}=PATH a release of that language")
    parser.parse([["warm", "up"]])  # the first call pays one-off costs; users should not
    return ServedModel(parser.language, parser, ModelName(name=parser.name, version=parser.version))


class LanguageMismatch(ValueError):
    """A release configured for one language records another."""


async def load_models(state: ServiceState, load: ParserLoader, executor: Executor) -> None:
    """Load and warm every release in ``executor``, the thread(s) that will parse: torch's OpenMP
    threads belong to the thread that first used them, and a second thread running torch
    operations (here, the loading) leaves two thread teams competing for the cores (measured on
    2 cores: a one-sentence parse took 20 ms instead of 13 ms from then on).  A release that cannot
    be loaded is recorded with the reason, and the others are still loaded."""
    plan = release_plan(state.settings)
    models = state.models
    models.configured = [release.language for release in plan if release.language is not None]
    models.pending = len(plan)
    loop = asyncio.get_running_loop()
    for release in plan:
        started = time.perf_counter()
        try:
            served = await loop.run_in_executor(executor, load_release, release, state.settings, load)
        except Exception as error:
            reason = str(error) if isinstance(error, LanguageMismatch) else describe_load_failure(error, release)
            models.failures[release.language or release.path.name] = reason
            models.pending -= 1
            logger.error("cannot serve: %s", reason, exc_info=not isinstance(error, (CheckpointError, OSError,
                                                                                      LanguageMismatch)))
            continue
        models.add(served)
        models.pending -= 1
        logger.info("model %s (%s, version %s, %d layers) loaded from %s in %.1f s", served.model.name,
                    served.language, served.model.version, served.parser.n_layers, release.path,
                    time.perf_counter() - started)
    # the hundreds of thousands of objects loaded so far (torch, the models, the libraries) live as
    # long as the process: out of the garbage collector's sight, a full collection takes
    # milliseconds instead of tens of them, so it cannot stall the event loop
    gc.collect()
    gc.freeze()
    if models.ready:
        state.metrics.ready.set(1)


# make_batcher(state, executor): what parse requests are submitted to (``submit(items, key)``,
# ``start()``, ``stop()``); Ray Serve's ingress (onlstm/ray_serve.py) sends them to model replicas
BatcherFactory = Callable[[ServiceState, Executor], Any]


def local_batcher(settings: Settings, executor: Executor, models: ServedModels,
                  on_batch: Callable[[int, int, float], None] | None = None) -> MicroBatcher:
    """The micro-batcher of one process, parsing with the model of each batch's language in ``executor``,
    as ``settings`` bound it.  Its key is the request's resolved options, language included: a batch
    never holds two languages."""

    def run_parse(items: list[Sentence], options: ParseOptions) -> list[ParseResult]:
        # requests reach the batcher only once their language's model is loaded
        parser = models.loaded[str(options.language)].parser
        return parser.parse_many(items, options, batch_size=settings.batch_max_sentences)

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
            state.batcher = local_batcher(settings, executor, state.models, state.metrics.observe_batch)
        else:
            state.batcher = make_batcher(state, executor)
        state.batcher.start()
        state.preparation = PreparationPool(settings.prepare_workers, settings.prepare_timeout_s,
                                            settings.max_queue_wait_s)
        await state.preparation.start()
        loading = asyncio.get_running_loop().create_task(load_models(state, load, executor), name="onlstm-load-models")
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
