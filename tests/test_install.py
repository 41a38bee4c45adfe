"""How a fresh machine installs: a CPU build of torch by default, in one overridable place."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

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


def build(*command: str, cwd: Path) -> str:
    """The output of a build (pip passes on the build backend's warnings), after checking that it succeeded."""
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_installing_and_building_print_no_setuptools_warnings(tmp_path):
    # The editable wheel of `pip install -e '.[dev]'` (README), built by the backend pyproject.toml
    # names, as pip calls it. Not installed: pip would replace the project's own editable install.
    build_system = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    backend_path = [str(REPO / folder) for folder in build_system.get("backend-path", [])]
    hook = f"""
import sys, warnings
sys.path[:0] = {backend_path!r}
import {build_system['build-backend']} as backend
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    backend.build_editable({str(tmp_path / 'editable')!r})
for warning in caught:
    print("WARNED", warning.category.__name__, warning.message)
"""
    editable = build("-c", hook, cwd=REPO)
    assert "WARNED" not in editable and "warning" not in editable.lower(), editable
    offline = ("--no-deps", "--no-build-isolation", "--no-index")
    built = build("-m", "pip", "wheel", *offline, "-w", str(tmp_path / "wheel"), str(REPO), cwd=tmp_path)
    assert "warning" not in built.lower(), built

    # the package data still travels in the wheel, under the one import name
    wheel, = (tmp_path / "wheel").glob("onlstm_parser-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    data = [*REPO.glob("models/weights/*.safetensors"), *REPO.glob("models/network/csrc/*.[ch]"), REPO / "models" / "MODEL_CARD.md",
            *REPO.glob("service/static/*"), *REPO.glob("training/presets/*.json"), *REPO.glob("training/sweeps/*.json")]
    expected = {"onlstm/" + path.relative_to(REPO).as_posix() for path in data}
    assert any(name.endswith(".h") for name in expected) and any(name.endswith(".css") for name in expected)
    assert expected <= packaged, sorted(expected - packaged)
    metadata = zipfile.ZipFile(wheel).read(next(name for name in packaged if name.endswith("/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
