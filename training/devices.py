"""Devices and numerics of a training run: which device (``pick_device``), bf16 autocast
(``uses_bf16``, ``make_autocast``), the seeds (``seed_everything``: dropout per rank, window
lengths shared by all ranks) and subnormal floats flushed to zero on the CPU
(``flush_subnormals``)."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator

import torch

from ..models.network import native

logger = logging.getLogger("onlstm.training")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def uses_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def make_autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast for ``bf16`` (and ``auto`` on a GPU); a disabled context for fp32."""
    use_bf16 = uses_bf16(precision, device)
    if device.type == "cuda" and not use_bf16:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 storage, TF32 tensor-core products
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


def seed_everything(seed: int, rank: int = 0) -> random.Random:
    """Torch (dropout, DropConnect, initialisation) from ``seed + rank``: each rank draws its own
    masks.  The returned Python RNG (window lengths) comes from ``seed`` alone, the same on
    every rank, so all ranks take windows of the same lengths and stay in step."""
    torch.manual_seed(seed + rank)
    return random.Random(seed)


@contextlib.contextmanager
def flush_subnormals() -> Iterator[None]:
    """Read and write subnormal floats (below 1.2e-38 in float32) as zero on the CPU while training.

    After about a thousand steps of the default recipe some weights of the recurrent and input
    matrices and tens of thousands of their gradients are subnormal, and x86 cores take a slow
    microcode path for every operation on one: the steps slowed from 2,200 to 850 tokens/s
    halfway through the run. Flushed, the same run resumed at step 2,000 takes 2,500 tokens/s
    with the same loss 40 steps later to every printed digit. ``torch.set_flush_denormal``
    reaches the calling thread only; the C kernels' library sets the threads of torch's OpenMP
    pool too. Torch's default (off) is restored afterwards.
    """
    kernels = native.kernels()
    torch.set_flush_denormal(True)
    if kernels is None or not kernels.flush_subnormals(True):
        logger.info("subnormal floats are flushed in the main thread only (no C kernels, or no shared OpenMP pool)")
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        if kernels is not None:
            kernels.flush_subnormals(False)
