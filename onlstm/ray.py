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

``onlstm parse --ray [ADDRESS]`` (see ``format_chunks_with_ray``) uses the same actors for
the command line: the input is read and split here, sent in chunks of sentences, and the
formatted chunks are written in input order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import ray
except ImportError as error:  # an optional extra
    raise ImportError("onlstm.ray needs Ray: pip install 'onlstm-parser[ray]'") from error

logger = logging.getLogger(__name__)

__all__ = ["format_chunks_with_ray", "iter_in_order", "parse_dataset"]

# chunks (of onlstm parse's 1,024 sentences) per Ray Data execution of the command line:
# bounds the driver's memory; each window pays the actors' start-up once (a few seconds)
CHUNKS_PER_WINDOW = 32


def _cluster_plan(use_gpus: bool | None, actors: int | None, threads: int) -> tuple[int, float, float, str]:
    """(actors, CPUs per actor, GPUs per actor, torch device) from the cluster's resources."""
    if not ray.is_initialized():  # as Ray Data itself does on first use: a local Ray, or RAY_ADDRESS's
        ray.init()
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
    """Holds one model for the actor's lifetime (Ray Data builds one per actor)."""

    def __init__(self, checkpoint: str | None, device: str, threads: int):
        import torch

        from .models.parser import Parser

        torch.set_num_threads(threads)
        self.parser = Parser.load(checkpoint, device=device)


class _SentenceParser(_ParserActor):
    """``map_batches`` function of ``parse_dataset``: one sentence per row, result columns added."""

    def __init__(self, checkpoint: str | None, device: str, threads: int, column: str, tokenized: bool,
                 options: dict[str, Any], model_batch_size: int, all_layers: bool):
        super().__init__(checkpoint, device, threads)
        self.column, self.tokenized, self.options = column, tokenized, options
        self.model_batch_size, self.all_layers = model_batch_size, all_layers

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from .models.text import Sentence

        if self.tokenized:
            sentences = [Sentence.from_tokens(str(token) for token in value) for value in batch[self.column]]
        else:
            sentences = [Sentence.from_text(str(value)) for value in batch[self.column]]
        results = self.parser.parse_many(sentences, batch_size=self.model_batch_size, **self.options)
        records = [result.to_dict(self.all_layers) for result in results]
        output = {name: list(values) for name, values in batch.items()}
        for name in records[0] if records else ():
            if name != "nested":  # arbitrarily deep lists have no columnar type; `tree` has the same tree
                output[name] = [record.get(name) for record in records]
        return output


def parse_dataset(ds: ray.data.Dataset, *, column: str = "text", tokenized: bool = False,
                  checkpoint: str | None = None, layer: int | None = None, decoder: str | None = None,
                  punctuation: str | None = None, right_branching_bias: float | None = None,
                  all_layers: bool = False, rows_per_batch: int = 256,
                  model_batch_size: int = 64, actors: int | None = None, threads: int = 1,
                  use_gpus: bool | None = None) -> ray.data.Dataset:
    """Parse a Ray Dataset whose ``column`` holds one sentence per row (lazy, streaming).

    Args:
        column: a raw sentence (``str``, tokenized in the actor) or, with ``tokenized=True``,
            a list of tokens.
        checkpoint: release checkpoint, present at this path on every node (default: bundled model).
        layer, decoder, punctuation, right_branching_bias, all_layers: as ``Parser.parse`` and the HTTP API.
        rows_per_batch: rows handed to an actor at a time; model_batch_size: sentences per model call.
        actors: size of the actor pool (default: one per GPU, else cluster CPUs / ``threads``).
        threads: torch threads (and Ray CPUs) per CPU actor.
        use_gpus: None: GPU actors when the cluster has GPUs; True/False to force.

    Returns the dataset with the API's result fields as columns, the input columns kept:
    ``tokens``, ``tree`` (PTB string), ``spans``, ``distances``, ``perplexity``, ``layer``,
    ``unk_share``, ``warnings``, ``offsets`` (character spans in the sentence, raw sentences
    only) and, with ``all_layers``, ``layer_distances`` and ``layer_trees``.
    """
    if column not in ds.columns():
        raise ValueError(f"the dataset has no column {column!r} (columns: {ds.columns()}); pass column=")
    if rows_per_batch < 1 or model_batch_size < 1 or threads < 1:
        raise ValueError("rows_per_batch, model_batch_size and threads must be at least 1")
    pool, cpus, gpus, device = _cluster_plan(use_gpus, actors, threads)
    options = {"layer": layer, "decoder": decoder, "punctuation": punctuation,
               "right_branching_bias": right_branching_bias}
    logger.info("parsing with %d actors (%g CPUs, %g GPUs each, device %s)", pool, cpus, gpus, device)
    return ds.map_batches(
        _SentenceParser,
        fn_constructor_kwargs={"checkpoint": checkpoint, "device": device, "threads": threads, "column": column,
                               "tokenized": tokenized, "options": options, "model_batch_size": model_batch_size,
                               "all_layers": all_layers},
        batch_size=rows_per_batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=cpus,
        num_gpus=gpus,
    )


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


# --- onlstm parse --ray ----------------------------------------------------------------------


class _ChunkFormatter(_ParserActor):
    """``map_batches`` function of the command line: a row is a chunk of sentences, the output its text."""

    def __init__(self, checkpoint: str | None, device: str, threads: int, options: Any):
        super().__init__(checkpoint, device, threads)
        self.options = options

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from .cli.parse import _format_chunk  # the same formatting as `onlstm parse` without Ray

        texts = [_format_chunk(self.parser, self.options, pickle.loads(chunk), int(first))
                 for first, chunk in zip(batch["first"], batch["chunk"])]
        return {"id": list(batch["id"]), "text": texts}


def format_chunks_with_ray(chunks: Iterable[tuple[list, int]], address: str, checkpoint: str | None,
                           options: Any, threads: int, actors: int | None, use_gpus: bool | None) -> Iterator[str]:
    """``onlstm parse --ray``: the formatted text of each ``(chunk, first_sentence_index)``, in input order.

    ``address`` is Ray's (``auto``, ``HOST:6379``, ``ray://HOST:10001``); empty: a local Ray
    on this machine's cores (or the cluster ``RAY_ADDRESS`` names).  The chunks are sent
    ``CHUNKS_PER_WINDOW`` at a time, one row each, numbered by an ``id`` column that puts the
    results back in order.
    """
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False  # `onlstm parse --progress` draws its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per window execution otherwise
    try:
        pool, cpus, gpus, device = _cluster_plan(use_gpus, actors, threads)
        logger.info("Ray: %d actors (%g CPUs, %g GPUs each, device %s)", pool, cpus, gpus, device)
        numbered = iter(chunks)
        while window := list(itertools.islice(numbered, CHUNKS_PER_WINDOW)):
            items = [{"id": position, "first": first, "chunk": pickle.dumps(chunk)}
                     for position, (chunk, first) in enumerate(window)]
            formatted = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                _ChunkFormatter,
                fn_constructor_kwargs={"checkpoint": checkpoint, "device": device, "threads": threads,
                                       "options": options},
                batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(pool, len(items))),
                num_cpus=cpus, num_gpus=gpus,
            )
            for row in iter_in_order(formatted, "id"):
                yield row["text"]
    finally:
        if started_here:
            ray.shutdown()
