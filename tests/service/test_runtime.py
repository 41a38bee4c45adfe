"""onlstm serve's process settings: set before torch loads, an explicit environment value wins."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
from onlstm.service.runtime import tune_process
tune_process()
import torch
print(os.environ.get("GOMP_SPINCOUNT"), "torch" in sys.modules, float(torch.ones(3).sum()))
"""


def run(environment):
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                               env={**os.environ, **environment})
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.split()


@pytest.mark.slow
def test_the_openmp_spin_count_is_set_before_torch_and_an_explicit_value_wins():
    environment = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                               env=environment)
    assert completed.stdout.split() == ["2000", "True", "3.0"], completed.stderr
    assert run({"GOMP_SPINCOUNT": "7"}) == ["7", "True", "3.0"]


MALLOC_SCRIPT = r"""
import ctypes
from onlstm.service.runtime import tune_process
tune_process()


def heap_bytes():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            start, end = (int(value, 16) for value in line.split()[0].split("-"))
            return end - start
    return 0


before = heap_bytes()
size = 1024 * 1024  # 1 MiB: above the service's 128 KiB threshold, below an explicit 64 MiB one
blocks = [ctypes.create_string_buffer(size) for _ in range(8)]
print((heap_bytes() - before) // size)
"""


def test_large_blocks_are_mapped_apart_unless_glibc_s_own_threshold_is_given():
    if not sys.platform.startswith("linux"):
        return
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}

    def heap_growth_mib(extra):
        completed = subprocess.run([sys.executable, "-c", MALLOC_SCRIPT], capture_output=True, text=True,
                                   timeout=120, env={**environment, **extra})
        assert completed.returncode == 0, completed.stderr
        return int(completed.stdout)

    assert heap_growth_mib({}) < 4  # each 1 MiB block is a mapping of its own
    assert heap_growth_mib({"MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024)}) >= 8  # all from the heap
