"""How a fresh machine installs: a CPU build of torch by default, in one overridable place."""

import shutil
import subprocess

import pytest

from .helpers import REPO

CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def dry_run(*variables: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "-B", "install", *variables], cwd=REPO, capture_output=True, text=True,
                            check=True, env={"PATH": "/usr/bin:/bin", "VENV": "/nonexistent-venv"})
    return result.stdout


def torch_line(output: str) -> str:
    return next(line for line in output.splitlines() if "install" in line and " torch==" in line)


def test_make_installs_the_cpu_build_of_torch_by_default():
    assert CPU_INDEX in torch_line(dry_run())


def test_the_index_is_overridable_and_ci_uses_the_local_wheel():
    assert "--index-url" not in torch_line(dry_run("TORCH_INDEX="))
    assert "whl/cu126" in torch_line(dry_run("TORCH_INDEX=https://download.pytorch.org/whl/cu126"))
    ci = (REPO / ".ci" / "run").read_text()
    assert 'export TORCH_INDEX=""' in ci and ci.rstrip().endswith("make test")
