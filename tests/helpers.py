"""What several test modules share: the repository's path, a tiny random model, the shared
data folder, and real servers on free loopback ports (``running_server`` for any command,
``serving`` for ``onlstm serve`` with its log, memory, metrics and a stop that must be graceful)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from onlstm.models.text.vocab import Vocab

REPO = Path(__file__).resolve().parents[1]
EVALB_SOURCE = REPO.parent / "shared" / "peers" / "evalb"
TINY_TEXT = [
    "the cat sat on the mat".split(),
    "a dog chased the cat into the garden".split(),
    "stocks fell N % in heavy trading on wall street".split(),
    "the company said it expects earnings to rise".split(),
]


def data_dir() -> Path:
    return Path(os.environ.get("ONLSTM_DATA", REPO.parent / "shared" / "data"))


def make_tiny_model(seed: int = 0, text: list[list[str]] = TINY_TEXT) -> tuple[ONLSTMLanguageModel, Vocab]:
    torch.manual_seed(seed)
    vocab = Vocab.build(text)
    config = ONLSTMConfig(
        vocab_size=len(vocab),
        embedding_size=16,
        hidden_size=24,
        n_layers=3,
        chunk_size=4,
        dropout_output=0.0,
        dropout_hidden=0.0,
        dropout_input=0.0,
        dropout_embedding=0.0,
        dropconnect=0.0,
    )
    return ONLSTMLanguageModel(config).eval(), vocab


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(base: str, path: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Poll ``base + path`` until it answers 200; fail with the log's tail if the server exits or
    the timeout passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the server exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not answer 200 after {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def read_all(connection: socket.socket, timeout: float) -> bytes:
    """Everything a raw socket receives until the server closes it or ``timeout`` passes in silence."""
    connection.settimeout(timeout)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


@contextlib.contextmanager
def running_server(command: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None,
                   cwd: Path | None = None, ready_timeout: float = 120.0,
                   shutdown_line: str = "Application shutdown complete") -> Iterator[str]:
    """Start ``command`` (``onlstm serve`` in some form, on ``port``), wait for /ready, yield its base URL,
    then stop it with SIGTERM: it must shut down gracefully (``shutdown_line`` in its log) and exit 0."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "wb") as output:
        process = subprocess.Popen(list(command), stdout=output, stderr=subprocess.STDOUT, env=environment,
                                   cwd=cwd or REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(base, "/ready", process, log, ready_timeout)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"the server ignored SIGTERM:\n{log.read_text()[-3000:]}") from None
    # `onlstm serve` turns a graceful stop into exit status 0 (as `docker stop` expects of PID 1)
    text = log.read_text()
    assert process.returncode == 0, f"the server stopped with {process.returncode}:\n{text[-3000:]}"
    assert shutdown_line in text, text[-3000:]


def read_metric(base: str, name: str, labels: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> float:
    """The sum of the samples named ``name`` (``onlstm_http_requests_total``) whose labels include
    ``labels`` (``{"status": "413"}``), read from the server's ``/metrics``; 0 when the metric exists
    but no sample matches yet (a labelled counter has no sample before its first increment).  An
    unknown name fails: a renamed metric must not read as a quiet 0."""
    text = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    families = list(text_string_to_metric_families(text))
    if not any(name == family.name or name.startswith(family.name + "_") for family in families):
        raise AssertionError(f"metric {name} not found at {base}/metrics")
    return sum(sample.value for family in families for sample in family.samples
               if sample.name == name and all(sample.labels.get(key) == value for key, value in (labels or {}).items()))


class ServerProcess:
    """One ``onlstm serve`` process; ``base`` is its URL."""

    def __init__(self, checkpoint: Path | str, log: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "onlstm", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--checkpoint", str(checkpoint)]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "ONLSTM_THREADS": "1", **(env or {})}
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment,
                                            cwd=REPO)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_until_answering(self.base, "/ready", self.process, self.log, timeout)

    def wait_answering(self, timeout: float = 120.0) -> None:
        """Until /health answers (the model may still be loading, or have failed to)."""
        wait_until_answering(self.base, "/health", self.process, self.log, timeout)

    def resident_bytes(self) -> int:
        """Resident set size of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("VmRSS not found in /proc status")

    def metric(self, name: str, **labels: str) -> float:
        """``read_metric`` of this server."""
        return read_metric(self.base, name, labels)

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


def build_evalb(folder: Path) -> str:
    """Compile EVALB from the shared peers folder into ``folder`` (skip the test where that cannot be done)."""
    if not (EVALB_SOURCE / "evalb.c").is_file():
        pytest.skip(f"EVALB's source is not at {EVALB_SOURCE} (the shared folder beside the repository)")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (gcc or cc) to build EVALB")
    program = folder / "evalb"
    built = subprocess.run(
        [compiler, "-O2", "-o", str(program), str(EVALB_SOURCE / "evalb.c")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return str(program)


BAD_CHECKPOINT_KINDS = ("missing", "directory", "truncated", "random bytes", "wrong shapes")


def make_bad_checkpoint(good: Path, folder: Path, kind: str) -> Path:
    """A checkpoint path that cannot be served, of one of ``BAD_CHECKPOINT_KINDS``, made from ``good``."""
    path = folder / f"{kind.replace(' ', '-')}.safetensors"
    if kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "wrong shapes":
        # a well-formed release file, digest recomputed, whose first matrix has one column too few
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        from onlstm.models.checkpoint import weights_digest

        with safe_open(str(good), framework="pt") as opened:
            metadata = opened.metadata()
        state = load_file(str(good))
        name = next(key for key in state if state[key].dim() == 2)
        state[name] = state[name][:, :-1].contiguous()
        save_file(state, str(path), metadata={**metadata, "sha256": weights_digest(state)})
    elif kind != "missing":
        raise ValueError(f"unknown kind {kind!r}; one of {BAD_CHECKPOINT_KINDS}")
    return path
