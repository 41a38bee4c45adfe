"""Process-wide settings for a latency-bound server on a few cores, applied by ``onlstm serve``
before it imports torch.

- ``GOMP_SPINCOUNT``: torch's OpenMP threads spin this long waiting for the next parallel region
  before they sleep.  The default (300,000 spins, hundreds of microseconds) keeps a core busy
  after every parse, when the event loop and the client need it; 2,000 still covers the waits
  between the two threads of the C layer loop (csrc/layer_inference.c) within a time step.
  Measured on 2 cores (~25-token requests; p50 at concurrency 1, p95 at 8, requests/s at 32):
  20,000 7.6 ms, 66.7 ms, 225; 2,000 7.8 ms, 56.0 ms, 233; 200 14.4 ms (the layer loop's
  threads fall asleep within a step).  An explicit environment value wins.
- glibc's allocator: a fixed 128 KiB mmap threshold (the default threshold grows with each freed
  block, so a batch's large temporary tensors end up in the heap and stay resident) and two
  arenas (one per thread that allocates, otherwise).  The price is CPU: every large tensor is
  a fresh mapping whose pages fault in, so inference keeps its largest scratch tensors in
  buffers (``models.network.recurrence.kept_buffer``).
  ``MALLOC_MMAP_THRESHOLD_`` in the environment wins (with ``MALLOC_TRIM_THRESHOLD_``, glibc's
  own variables): 8 MiB and 32 MiB took concurrency 32 from 251 to 269 requests/s on the
  2-core machine (before those buffers: from about 210 to 270, peak memory 348 -> 366 MB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

OPENMP_SPIN_COUNT = "2000"
MMAP_THRESHOLD_BYTES = 128 * 1024
MALLOC_ARENAS = 2
# mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_process() -> None:
    """Apply the settings above; a no-op where they do not apply (torch already imported, no glibc)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        logger.debug("no mallopt in this C library: allocator settings left as they are")
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
