"""Parsing on Ray (``pip install 'onlstm-parser[ray]'``): one model per actor, through Ray Data.

    import ray
    from onlstm.ray import iter_in_order, parse_dataset

    ray.init()                                     # or ray.init(address="auto") on a cluster
    ds = ray.data.read_text("s3://bucket/sentences.txt")      # one sentence per row, column "text"
    ds = ds.add_column("id", ...)                               # any column you want to keep travels along
    parsed = parse_dataset(ds)                                  # lazy; adds tokens, tree, spans, ...
    parsed.write_parquet("s3://bucket/trees/")                  # or stream: parsed.iter_rows()

``parse_dataset`` runs ``map_batches`` with a pool of actors, each of which loads the model
once (the bundled model is inside the installed package, so every node has it; a
``checkpoint`` path must exist on every node).  On a cluster with GPUs the actors take one
GPU each and run the model there; otherwise each takes ``threads`` CPUs.  Ray Data streams:
rows flow through the actors as they are read, and results come out before the input ends.
Rows may come out in another order than they went in; keep an id column and use
``iter_in_order`` (streaming, holds only the rows that arrived early) or ``sort``.

Languages: ``ParseOptions.language`` (or ``language="es"``) parses every row with that
language's bundled model; ``language_column="lang"`` takes each row's language from a column
instead (each actor holds a ``models.pool.ParserPool`` and loads a language on its first row).
A language with no bundled model is refused before any actor starts when it is the option's,
and fails the run with ``LanguageError`` when a row names it.  Each row records ``language``
and ``model`` (the model's name and version).

``chunk_runner`` runs file parsing (``onlstm.models.predict.predict``, ``onlstm parse --ray
[ADDRESS]``) on the same actors: the input is read and split here, sent in chunks of
sentences, and the formatted chunks are written in input order:

    from onlstm.models.predict import predict
    from onlstm.ray import chunk_runner

    predict(parser, "big.txt", "trees.jsonl", runner=chunk_runner("auto", threads=2))
"""

from __future__ import annotations

import heapq
import itertools
import logging
import pickle
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import ray
except ImportError as error:  # an optional extra
    raise ImportError("onlstm.ray needs Ray: pip install 'onlstm-parser[ray]'") from error

from .models.languages import bundled_checkpoint
from .models.options import ParseOptions
from .models.predict import ChunkJob, ChunkRunner, InputSentence, format_chunk

logger = logging.getLogger(__name__)

__all__ = ["chunk_runner", "iter_in_order", "parse_dataset", "start_ray"]

# chunks (of predict's 1,024 sentences) per Ray Data execution of file parsing:
# bounds the driver's memory; each window pays the actors' start-up once (a few seconds)
CHUNKS_PER_WINDOW = 32


def start_ray(address: str | None = None, **init_arguments: Any) -> bool:
    """``ray.init`` unless Ray is running already: a local Ray, or the cluster at ``address``
    (``auto``, ``HOST:6379``, ``ray://HOST:10001``; empty or None: ``RAY_ADDRESS``'s, else local).
    Returns whether it started Ray (and so should shut it down).
    """
    if ray.is_initialized():
        return False
    ray.init(address=address or None, **init_arguments)
    return True


class _TokenAuthNotice(logging.Filter):
    """Drops Ray's warning that a new local Ray turned its token authentication on (its default,
    whenever ``RAY_AUTH_MODE`` is unset: the warning says all is as it should be).  Setting
    the variable instead cannot work once ``ray`` is imported: the driver has read its
    configuration by then, and a cluster it started would refuse it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_TokenAuthNotice())


def _cluster_plan(use_gpus: bool | None, actors: int | None, threads: int) -> tuple[int, float, float, str]:
    """(actors, CPUs per actor, GPUs per actor, torch device) from the cluster's resources."""
    start_ray()  # as Ray Data itself does on first use: a local Ray, or RAY_ADDRESS's
    resources = ray.cluster_resources()
    gpus_available = int(resources.get("GPU", 0))
    if use_gpus is None:
        use_gpus = gpus_available > 0
    if use_gpus:
        if gpus_available == 0:
            raise ValueError("use_gpus=True but the Ray cluster has no GPU")
        return actors or gpus_available, 1.0, 1.0, "cuda"
    return actors or max(1, int(resources.get("CPU", 1) // threads)), float(threads), 0.0, "cpu"


class _ParserActor:
    """Holds its models for the actor's lifetime (Ray Data builds one per actor)."""

    def __init__(self, checkpoint: str | None, device: str, threads: int, language: str | None = None):
        import torch

        from .models.parser import Parser

        torch.set_num_threads(threads)
        self.parser = Parser.load(checkpoint, device=device, language=language)


class _SentenceParser:
    """``map_batches`` function of ``parse_dataset``: one sentence per row, result columns added."""

    def __init__(self, checkpoint: str | None, device: str, threads: int, column: str, tokenized: bool,
                 options: ParseOptions, model_batch_size: int, language_column: str | None = None,
                 checkpoints: dict[str, str] | None = None):
        import torch

        from .models.parser import Parser
        from .models.pool import ParserPool

        torch.set_num_threads(threads)
        # one release: its language only; the bundled models: any, each loaded on its first row
        self.pool = ParserPool.of(Parser.load(checkpoint, device=device, language=options.language)) \
            if checkpoint is not None else ParserPool(device=device, lazy=True, checkpoints=checkpoints)
        self.column, self.tokenized, self.options = column, tokenized, options
        self.model_batch_size, self.language_column = model_batch_size, language_column

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        values = list(batch[self.column])
        languages = [str(value) for value in batch[self.language_column]] if self.language_column else \
            [self.options.language or self.pool.default_language] * len(values)
        results: list[Any] = [None] * len(values)
        for language in dict.fromkeys(languages):  # one parse_many per language in the batch
            rows = [row for row, row_language in enumerate(languages) if row_language == language]
            parsed = self.pool.parse_many([self._sentence(values[row], language) for row in rows],
                                          self.options.replace(language=language), batch_size=self.model_batch_size)
            for row, result in zip(rows, parsed):
                results[row] = result
        return _with_result_columns(batch, results)

    def _sentence(self, value: Any, language: str) -> Any:
        from .models.text.sentences import Sentence

        if self.tokenized:
            return Sentence.from_tokens(str(token) for token in value)
        return Sentence.from_text(str(value), language=language)


def _with_result_columns(batch: dict[str, Any], results: list[Any]) -> dict[str, list]:
    """The batch's columns, and the API's result fields (its language included) and the model's name and version."""
    records = [result.to_dict() for result in results]
    output = {name: list(values) for name, values in batch.items()}
    for name in records[0] if records else ():
        if name != "nested":  # arbitrarily deep lists have no columnar type; `tree` has the same tree
            output[name] = [record.get(name) for record in records]
    if results:
        output["model"] = [result.model.get("name") for result in results]
        output["model_version"] = [result.model.get("version") for result in results]
    return output


def parse_dataset(ds: ray.data.Dataset, options: ParseOptions | None = None, *, column: str = "text",
                  tokenized: bool = False, language_column: str | None = None, checkpoint: str | None = None,
                  checkpoints: dict[str, str] | None = None, rows_per_batch: int = 256,
                  model_batch_size: int = 64, actors: int | None = None, threads: int = 1,
                  use_gpus: bool | None = None, max_restarts: int = 0, **values: Any) -> ray.data.Dataset:
    """Parse a Ray Dataset whose ``column`` holds one sentence per row (lazy, streaming).

    Args:
        options: the parse options (``ParseOptions``; ``None``: the model's defaults), with
            keyword ``values`` (``layer=1``, ``decoder="split"``, ``all_layers=True``, ...) over them,
            as ``Parser.parse`` and the HTTP API take them; checked here, before any actor starts.
        column: a raw sentence (``str``, tokenized in the actor as its language is) or, with
            ``tokenized=True``, a list of tokens.
        language_column: a column of ISO 639-1 codes, each row's language (default: every row is
            ``options.language``, else en, or the checkpoint's language).
        checkpoint: release checkpoint, present at this path on every node (default: the bundled model
            of each row's language); it must be a release of ``options.language`` when that is given.
        checkpoints: instead of ``checkpoint``, a release per language (``{"es": path}``), present on
            every node, used instead of the bundled model of that language (and for languages with none).
        rows_per_batch: rows handed to an actor at a time; model_batch_size: sentences per model call.
        actors: size of the actor pool (default: one per GPU, else cluster CPUs / ``threads``).
        threads: torch threads (and Ray CPUs) per CPU actor.
        use_gpus: None: GPU actors when the cluster has GPUs; True/False to force.
        max_restarts: how often Ray may restart a failed actor (0: the run fails with its error;
            with restarts Ray logs a core_worker error-level note about restarting at every start).

    Returns the dataset with the API's result fields as columns, the input columns kept:
    ``tokens``, ``tree`` (PTB string), ``spans``, ``distances``, ``perplexity``, ``layer``,
    ``unk_share``, ``warnings``, ``language``, ``model`` and ``model_version``, ``offsets`` (character
    spans in the sentence, raw sentences only) and, with ``all_layers``, ``layer_distances`` and
    ``layer_trees``.
    """
    options = ParseOptions.of(options, **values)
    if checkpoint is not None and checkpoints:
        raise ValueError("give checkpoint= (one release) or checkpoints= (one per language), not both")
    if options.language is not None and checkpoint is None and options.language not in (checkpoints or {}):
        bundled_checkpoint(options.language)  # LanguageError naming the bundled ones, before any actor starts
    for name in (column, language_column):
        if name is not None and name not in ds.columns():
            raise ValueError(f"the dataset has no column {name!r} (columns: {ds.columns()})")
    if rows_per_batch < 1 or model_batch_size < 1 or threads < 1:
        raise ValueError("rows_per_batch, model_batch_size and threads must be at least 1")
    pool, cpus, gpus, device = _cluster_plan(use_gpus, actors, threads)
    logger.info("parsing with %d actors (%g CPUs, %g GPUs each, device %s)", pool, cpus, gpus, device)
    return _map_batches(
        ds, max_restarts,
        fn=_SentenceParser,
        fn_constructor_kwargs={"checkpoint": checkpoint, "device": device, "threads": threads, "column": column,
                               "tokenized": tokenized, "options": options, "model_batch_size": model_batch_size,
                               "language_column": language_column, "checkpoints": checkpoints},
        batch_size=rows_per_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=cpus,
        num_gpus=gpus,
    )


def _map_batches(ds: ray.data.Dataset, max_restarts: int, **arguments: Any) -> ray.data.Dataset:
    """``ds.map_batches(**arguments)`` whose actors Ray restarts at most ``max_restarts`` times.

    Ray Data restarts its actors without limit by default; since it passes their constructor
    arguments through the object store, Ray then logs an error-level ``core_worker.cc`` line
    at every actor start (a restart could fail if those arguments were lost).  Ray 2.60 takes
    ``max_restarts`` only among the remote arguments it now calls deprecated, with no named
    parameter for it yet: the deprecation warning is left out here, not the setting.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning)
        return ds.map_batches(**arguments, max_restarts=max_restarts)


def iter_in_order(rows: Iterable[dict[str, Any]] | ray.data.Dataset, id_column: str = "id",
                  first: int = 0) -> Iterator[dict[str, Any]]:
    """Rows in the order of their ``id_column`` (consecutive integers from ``first``), streaming.

    Only the rows that arrive before their turn are held, so memory stays near the number of
    rows in flight rather than the size of the dataset.
    """
    if isinstance(rows, ray.data.Dataset):
        rows = rows.iter_rows()
    waiting: list[tuple[int, int, dict[str, Any]]] = []
    expected = first
    arrival = itertools.count()  # ties never compare the rows themselves
    for row in rows:
        heapq.heappush(waiting, (int(row[id_column]), next(arrival), row))
        while waiting and waiting[0][0] == expected:
            yield heapq.heappop(waiting)[2]
            expected += 1
    if waiting:
        raise ValueError(f"the ids in {id_column!r} are not consecutive: {expected} never came "
                         f"({len(waiting)} rows from id {waiting[0][0]} left)")


# --- file parsing (onlstm.models.predict, onlstm parse --ray) --------------------------------


class _ChunkFormatter(_ParserActor):
    """``map_batches`` function of file parsing: a row is a chunk of sentences, the output its text."""

    def __init__(self, job: ChunkJob, threads: int, device: str):
        super().__init__(job.checkpoint, device, threads, job.options.language)
        self.job = job

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        texts = [format_chunk(self.parser, self.job, pickle.loads(chunk), int(first))
                 for first, chunk in zip(batch["first"], batch["chunk"])]
        return {"id": list(batch["id"]), "text": texts}


def _quiet_ray_data() -> None:
    ray.data.DataContext.get_current().enable_progress_bars = False  # the caller's progress callback draws
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per window execution otherwise
    # ...and one warning that the progress bars (turned off just above, on purpose) are off
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def chunk_runner(address: str = "", *, actors: int | None = None, threads: int = 1,
                 use_gpus: bool | None = None) -> ChunkRunner:
    """A ``runner`` for ``onlstm.models.predict.predict`` that parses the chunks on Ray actors.

    ``address`` is Ray's (``auto``, ``HOST:6379``, ``ray://HOST:10001``); empty: a local Ray
    on this machine's cores (or the cluster ``RAY_ADDRESS`` names), shut down at the end.
    ``actors``: the pool's size (default: one per GPU, else cluster CPUs / ``threads``);
    ``use_gpus``: None: GPU actors when the cluster has GPUs.  The chunks are sent
    ``CHUNKS_PER_WINDOW`` at a time, one row each, numbered by an ``id`` column that puts the
    results back in order.
    """

    def run(chunks: Iterable[tuple[list[InputSentence], int]], job: ChunkJob) -> Iterator[str]:
        started_here = start_ray(address, include_dashboard=False, logging_level=logging.WARNING)
        _quiet_ray_data()
        try:
            pool, cpus, gpus, device = _cluster_plan(use_gpus, actors, threads)
            logger.info("Ray: %d actors (%g CPUs, %g GPUs each, device %s)", pool, cpus, gpus, device)
            numbered = iter(chunks)
            while window := list(itertools.islice(numbered, CHUNKS_PER_WINDOW)):
                items = [{"id": position, "first": first, "chunk": pickle.dumps(chunk)}
                         for position, (chunk, first) in enumerate(window)]
                formatted = _map_batches(
                    ray.data.from_items(items, override_num_blocks=len(items)), 0,
                    fn=_ChunkFormatter, fn_constructor_kwargs={"job": job, "threads": threads, "device": device},
                    batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(pool, len(items))),
                    num_cpus=cpus, num_gpus=gpus,
                )
                for row in iter_in_order(formatted, "id"):
                    yield row["text"]
        finally:
            if started_here:
                ray.shutdown()

    return run
