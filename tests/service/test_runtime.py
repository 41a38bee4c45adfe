"""onlstm serve's process settings: set before torch loads, an explicit environment value wins."""

import os
import subprocess
import sys

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


def test_the_openmp_spin_count_is_set_before_torch_and_an_explicit_value_wins():
    environment = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                               env=environment)
    assert completed.stdout.split() == ["2000", "True", "3.0"], completed.stderr
    assert run({"GOMP_SPINCOUNT": "7"}) == ["7", "True", "3.0"]
