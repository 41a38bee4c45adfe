"""A training run under ``torchrun``: this process's place in the job (``Distributed``,
``setup_distributed``: ``nccl`` on GPUs, ``gloo`` on CPUs) and the few collective calls the
Trainer makes: rank 0's value or decision on every rank (``broadcast_from_master``,
``master_decides``), a mean over ranks (``mean_over_ranks``), and the check that every rank
read the same corpora (``check_same_data_on_every_rank``).  Alone, rank 0 of 1, each is a no-op."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..models.text.vocab import Vocab
from .devices import pick_device


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job; rank 0 of 1 when run alone."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    enabled: bool = False  # started by torchrun: the model is wrapped in DDP
    owns_group: bool = False  # this call initialised the process group (and destroys it)

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the ``torchrun`` process group when RANK and WORLD_SIZE are set (nanoGPT's recipe):
    ``nccl`` with one GPU per local rank, ``gloo`` on CPUs.  Rendezvous comes from torchrun's
    MASTER_ADDR / MASTER_PORT."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Distributed(), pick_device(device_name)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process on each node
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise ValueError(
            f"the process group ({dist.get_rank()} of {dist.get_world_size()}) disagrees with RANK / WORLD_SIZE"
        )
    return Distributed(rank, local_rank, world_size, local_world_size, True, owns_group), device


def broadcast_from_master(value, distributed: Distributed):
    """Rank 0's ``value`` on every rank (any picklable object); the others wait for it."""
    if not distributed.enabled:
        return value
    holder = [value if distributed.master else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_over_ranks(value: float, distributed: Distributed, device: torch.device) -> float:
    """The mean of a float over all ranks (NaN anywhere gives NaN everywhere)."""
    if not distributed.enabled:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)  # SUM: gloo has no AVG
    return total.item() / distributed.world_size


def master_decides(flag: bool, distributed: Distributed, device: torch.device) -> bool:
    """Rank 0's yes/no on every rank (clocks differ between processes)."""
    if not distributed.enabled:
        return bool(flag)
    decision = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(decision, src=0)
    return bool(decision.item())


def check_same_data_on_every_rank(vocab: Vocab, n_tokens: int, distributed: Distributed) -> None:
    """Every rank builds the vocabulary and the stream from its own copy of the corpora; they must agree."""
    if not distributed.enabled:
        return
    digest = hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest() + f"/{n_tokens}"
    digests = [None] * distributed.world_size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        differing = [rank for rank, other in enumerate(digests) if other != digests[0]]
        raise ValueError(
            f"ranks {differing} read different training data from rank 0 (vocabulary or token count differ): "
            "every node needs the same corpora and --data folder"
        )
