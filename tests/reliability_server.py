"""A real service process for the reliability tests: ``python -m service`` on a free loopback
port, with its log, its resident memory, its metrics, and a stop that must be graceful (exit 0)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.test_service_server import free_port

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """One ``python -m service`` process; ``base`` is its URL."""

    def __init__(self, checkpoint: Path | str, log: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port),
                   "--checkpoint", str(checkpoint)]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "ONLSTM_THREADS": "1", **(env or {})}
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment,
                                            cwd=REPO)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the server was not ready after {timeout} s:\n{self.log_text()[-3000:]}")

    def wait_answering(self, timeout: float = 120.0) -> None:
        """Until /health answers (the model may still be loading, or have failed to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer after {timeout} s:\n{self.log_text()[-3000:]}")

    def resident_bytes(self) -> int:
        """Resident set size of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("VmRSS not found in /proc status")

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.base}/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not found")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (SIGKILL and fail if it does not stop in ``timeout`` s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server ignored SIGTERM for {timeout} s:\n{self.log_text()[-3000:]}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def serving(checkpoint: Path | str, log: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A ready server; on leaving, SIGTERM must stop it gracefully with exit status 0."""
    server = ServerProcess(checkpoint, log, env)
    try:
        server.wait_ready()
        yield server
    except BaseException:
        server.kill()
        raise
    status = server.terminate()
    text = server.log_text()
    assert status == 0, f"the server stopped with {status}:\n{text[-3000:]}"
    assert "Application shutdown complete" in text, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
