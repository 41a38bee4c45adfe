"""The type checker of `make lint` (mypy, pyproject's [tool.mypy]) rejects a wrong parse option."""

import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest

from .helpers import REPO

SNIPPET = """\
from onlstm import Parser
from onlstm.models.options import ParseOptions

parser = Parser.load()
ParseOptions(layer="1")  # bad: layer
ParseOptions(decoder="split", layr=1)  # bad: layr
parser.parse("The cat sat.", ParseOptions(decoder=3))  # bad: decoder
parser.parse("The cat sat.", ParseOptions(punctuation="none"))  # bad: punctuation
options = ParseOptions(layer=1, decoder="split", punctuation="model", right_branching_bias=0.4, all_layers=True)
results = parser.parse("The cat sat.", options.replace(layer=0))
"""


def package_dir() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def test_the_makefile_lays_out_every_folder_of_package_dir():
    # `make typecheck` links these folders under build/typecheck/onlstm; a new one must be added there too
    folders = {name.removeprefix("onlstm."): folder for name, folder in package_dir().items() if name != "onlstm"}
    assert all(name == folder for name, folder in folders.items()), folders
    linked = re.search(r"for folder in ([\w ]+); do ln -s", (REPO / "Makefile").read_text())
    assert linked is not None and sorted(linked.group(1).split()) == sorted(folders)


def lay_out_package(root: Path) -> None:
    """The package as installed, in symlinks (as `make typecheck` does): onlstm/<entry>, onlstm/models, ..."""
    top = root / "onlstm"
    top.mkdir()
    for name, folder in package_dir().items():
        if name == "onlstm":
            for entry in (REPO / folder).iterdir():
                if entry.name != "__pycache__":
                    (top / entry.name).symlink_to(entry)
        else:
            (top / name.removeprefix("onlstm.")).symlink_to(REPO / folder)


@pytest.mark.slow
def test_mypy_rejects_a_wrong_option_type(tmp_path):
    pytest.importorskip("mypy")
    lay_out_package(tmp_path)
    (tmp_path / "snippet.py").write_text(SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--cache-dir",
         str(tmp_path / "cache"), "--python-executable", sys.executable, "snippet.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    errors = {int(line): code for line, code in re.findall(r"^snippet\.py:(\d+): error: .*\[([\w-]+)\]$", output,
                                                            re.MULTILINE)}
    bad = {number: line for number, line in enumerate(SNIPPET.splitlines(), 1) if "# bad" in line}
    assert result.returncode == 1, output
    assert sorted(errors) == sorted(bad), output  # each bad line, and nothing else (a typed, valid call passes)
    assert errors[5] == "arg-type" and errors[6] == "call-arg", output
    assert "expected \"int | None\"" in output and "Literal['greedy', 'split']" in output, output
