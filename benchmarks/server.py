"""A real uvicorn serving the app on loopback, as a subprocess: ``onlstm serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from onlstm.service.preparation import stat_fields

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"rss_mb": values.get("VmRSS", float("nan")), "peak_rss_mb": values.get("VmHWM", float("nan"))}


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, their children included (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(stat_fields(int(entry.name))[1])  # field 4: the parent
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


class Server:
    """``with Server(checkpoint, env) as server:`` starts the service and waits until /ready says 200
    (``checkpoint=None``: every bundled language, as a plain ``onlstm serve``)."""

    def __init__(self, checkpoint: Path | None, environment: dict[str, str] | None = None, start_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.checkpoint = checkpoint
        self.environment = environment or {}
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        environment = {**os.environ, "ONLSTM_LOG_LEVEL": "warning", **self.environment}
        command = [sys.executable, "-m", "onlstm", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.checkpoint is not None:
            command += ["--checkpoint", str(self.checkpoint)]
        self.process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.process.returncode} while starting")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the service was not ready after {self.start_timeout:.0f} s")

    def memory(self) -> dict[str, float]:
        assert self.process is not None
        return rss_mb(self.process.pid)

    def helpers_memory(self) -> dict[str, float]:
        """The resident memory of the processes the server started (its text-preparation workers
        and multiprocessing's helpers), summed: they are not in ``memory()``.  An upper bound: pages
        a forked worker still shares with its parent count in both."""
        assert self.process is not None
        sizes = [rss_mb(pid) for pid in descendants(self.process.pid)]
        return {"processes": len(sizes), "rss_mb": sum(size["rss_mb"] for size in sizes),
                "peak_rss_mb": sum(size["peak_rss_mb"] for size in sizes)}

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
