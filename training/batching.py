"""Token-id stream -> BPTT windows, as in AWD-LSTM.

The corpus is one long stream (every sentence followed by ``<eos>``), cut into
``n_streams`` parallel rows; training walks through the rows in windows whose
length is drawn around ``bptt`` (95% of windows around ``bptt``, 5% around
``bptt / 2``), carrying the hidden state from one window to the next.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ..models.text.vocab import Vocab


def encode_stream(sentences: Sequence[Sequence[str]], vocab: Vocab) -> Tensor:
    """One 1-D LongTensor: the ids of every sentence, each followed by ``<eos>``."""
    ids: list[int] = []
    eos = vocab.eos_id
    for sentence in sentences:
        ids.extend(vocab.encode(sentence))
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def batchify(stream: Tensor, n_streams: int) -> Tensor:
    """(N,) -> (n_streams, N // n_streams), dropping the remainder."""
    length = stream.numel() // n_streams
    if length < 2:
        raise ValueError(
            f"the corpus ({stream.numel()} tokens) is too small for {n_streams} streams; "
            "give more text or lower batch_size / accumulate"
        )
    return stream[: n_streams * length].view(n_streams, length)


def window_length(bptt: int, rng: random.Random, randomise: bool) -> int:
    """AWD-LSTM's random window length (at least 5 tokens)."""
    if not randomise:
        return bptt
    base = bptt if rng.random() < 0.95 else bptt / 2
    return max(5, int(rng.gauss(base, 5)))


def windows(
    data: Tensor, start: int, bptt: int, rng: random.Random, randomise: bool
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield ``(position, inputs, targets)``, each (n_streams, length), from ``start`` to the end."""
    position = start
    while position < data.size(1) - 1:
        length = min(window_length(bptt, rng, randomise), data.size(1) - 1 - position)
        yield position, data[:, position : position + length], data[:, position + 1 : position + 1 + length]
        position += length


def shard_rows(data: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s rows of ``data`` (n_streams, L): the ``rank``-th of ``world_size`` equal blocks.

    ``batchify(stream, world_size * n)`` then ``shard_rows`` gives each rank ``n`` streams that
    together are one contiguous ``1/world_size`` of the token stream, and the ranks'
    micro-batches are exactly the micro-batches of a single process with
    ``world_size`` times the accumulation.
    """
    if data.size(0) % world_size:
        raise ValueError(f"{data.size(0)} streams cannot be shared equally by {world_size} ranks")
    per_rank = data.size(0) // world_size
    return data[rank * per_rank : (rank + 1) * per_rank].clone()
