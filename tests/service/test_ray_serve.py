"""`onlstm serve --ray --replicas 2` on a local Ray: the HTTP contract tests of test_server.py
pass against it unchanged, 400 requests at concurrency 16 give no error, and killing one model
replica's process under load loses no request (/ready says 503 until the new one has its model)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..helpers import free_port, running_server
from .test_server import (  # noqa: F401  (collected here too, against the Ray Serve server)
    test_chunked_body_over_the_limit_is_refused_without_reading_it_all,
    test_concurrent_requests_get_their_own_results,
    test_each_input_form_over_http,
    test_errors_over_http,
    test_health_ready_model_metrics_and_page_over_http,
)

pytest.importorskip("ray.serve", reason="Ray Serve is in the ray extra")
pytestmark = pytest.mark.slow

MODEL_REPLICA = b"ServeReplica:onlstm:ParserReplica"


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory) -> Iterator[str]:
    """The same settings as test_server.py's uvicorn server, on Ray Serve with two model replicas."""
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--ray", "--replicas", "2", "--host", "127.0.0.1",
               "--port", str(port), "--checkpoint", str(tiny_checkpoint)]
    env = {"ONLSTM_BATCH_MAX_WAIT_MS": "50", "ONLSTM_MAX_BODY_BYTES": "4096", "ONLSTM_THREADS": "1"}
    with running_server(command, port, log, env, ready_timeout=180, shutdown_line="stopping: Ray Serve") as base:
        yield base


def model_replica_pids() -> list[int]:
    """The processes of the model replicas (Ray names them in their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MODEL_REPLICA in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def post_all(base: str, count: int, concurrency: int, during=None) -> list[str]:
    """``count`` one-sentence parse requests from ``concurrency`` clients; the failures, described."""
    failures: list[str] = []
    sent = iter(range(count))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while True:
                with lock:
                    index = next(sent, None)
                if index is None:
                    return
                tokens = [["request", str(index), "the", "cat", "sat", "on", "the", "mat"]]
                try:
                    response = http.post("/parse", json={"tokens": tokens})
                except httpx.HTTPError as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200 or response.json()["results"][0]["tokens"] != tokens[0]:
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    with ThreadPoolExecutor(concurrency) as pool:
        clients = [pool.submit(client) for _ in range(concurrency)]
        if during is not None:
            during()
        for finished in clients:
            finished.result()
    return failures


def test_400_requests_at_concurrency_16_give_no_error(server):
    assert post_all(server, 400, 16) == []


def test_killing_a_model_replica_under_load_loses_no_request(server):
    pids = model_replica_pids()
    assert len(pids) == 2, pids

    seen: list[tuple[int, dict]] = []

    def watch_ready() -> None:
        # from the kill on, beside the requests: under load Ray Serve may see the replica go and start
        # its replacement before the requests are done, so /ready is watched from then, not after them
        deadline = time.monotonic() + 180
        with httpx.Client(timeout=10) as http:
            while time.monotonic() < deadline:
                ready = http.get(f"{server}/ready")
                seen.append((ready.status_code, ready.json()))
                if ready.status_code == 200 and any(code == 503 for code, _ in seen):
                    return
                time.sleep(0.2)

    watcher = threading.Thread(target=watch_ready)

    def kill_one() -> None:
        time.sleep(1.0)
        os.kill(pids[0], signal.SIGKILL)
        watcher.start()

    assert post_all(server, 600, 16, during=kill_one) == []
    watcher.join(200)
    # /ready says 503 until the replacement has its model, then 200 again
    lost = [body for code, body in seen if code == 503]
    assert lost, f"/ready never noticed the lost replica: {seen[-3:]}"
    assert all(body["status"] == "loading" for body in lost), lost
    assert lost[0]["error"] == "1 of 2 model replicas have their model", lost[0]
    assert seen[-1][0] == 200, seen[-3:]
    assert len(model_replica_pids()) == 2 and pids[0] not in model_replica_pids()


@pytest.fixture(scope="module")
def languages_server(tmp_path_factory) -> Iterator[str]:
    """Two languages (tests/releases.py's tiny en and zh releases) on Ray Serve, one model replica."""
    from ..releases import make_release

    folder = tmp_path_factory.mktemp("ray-languages")
    languages = ",".join(f"{language}={make_release(folder, language)}" for language in ("en", "zh"))
    port = free_port()
    command = [sys.executable, "-m", "onlstm", "serve", "--ray", "--replicas", "1", "--host", "127.0.0.1",
               "--port", str(port), "--languages", languages]
    with running_server(command, port, folder / "server.log", {"ONLSTM_THREADS": "1"}, ready_timeout=180,
                        shutdown_line="stopping: Ray Serve") as base:
        yield base


def test_each_language_is_parsed_by_its_model_on_the_replicas(languages_server):
    chinese = httpx.post(f"{languages_server}/parse", json={"text": "北京是中国的首都。", "language": "zh"}, timeout=60)
    assert chinese.status_code == 200, chinese.text
    result = chinese.json()["results"][0]
    assert result["language"] == "zh" and result["model"]["name"] == "onlstm-tiny-zh" and result["tokens"][0] == "北京"
    english = httpx.post(f"{languages_server}/parse", json={"tokens": [["The", "cat"]]}, timeout=60).json()
    assert english["results"][0]["language"] == "en" and english["model"]["name"] == "onlstm-tiny-en"
    refused = httpx.post(f"{languages_server}/parse", json={"text": "Olá.", "language": "pt"}, timeout=60)
    assert refused.status_code == 422 and refused.json()["error"]["available"] == ["en", "zh"]
    assert httpx.get(f"{languages_server}/ready").json()["languages"] == {"en": "ready", "zh": "ready"}


PROXY_READY_CHECK = """
from onlstm.ray_serve import give_the_proxy_time
import ray
give_the_proxy_time(None)
ray.init(num_cpus=1, include_dashboard=False)
@ray.remote
def seconds():
    from ray.serve._private.constants import PROXY_READY_CHECK_TIMEOUT_S
    return PROXY_READY_CHECK_TIMEOUT_S
print(ray.get(seconds.remote()))
ray.shutdown()
"""


def test_the_proxy_gets_time_to_start_in_a_cluster_started_here(monkeypatch):
    # Ray's 5 s made `onlstm serve --ray` exit at start-up on a loaded machine; the cluster's processes read it
    monkeypatch.delenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", raising=False)
    output = subprocess.run([sys.executable, "-c", PROXY_READY_CHECK], capture_output=True, text=True, timeout=300,
                            check=True).stdout
    assert output.split()[-1] == "45.0"


def test_an_operators_setting_of_the_proxy_check_wins_and_a_joined_cluster_keeps_its_own(monkeypatch):
    from onlstm.ray_serve import give_the_proxy_time

    monkeypatch.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "7")
    give_the_proxy_time(None)
    assert os.environ["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"] == "7"
    monkeypatch.delenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S")
    give_the_proxy_time("ray://head:10001")
    assert "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S" not in os.environ


def test_a_stop_during_the_start_ends_the_fleet_at_once(tiny_checkpoint, tmp_path):
    # a start takes minutes on a loaded machine; SIGTERM then used to wait for it to finish
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--ray", "--replicas", "2", "--host", "127.0.0.1",
               "--port", str(free_port()), "--checkpoint", str(tiny_checkpoint)]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", "ONLSTM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 180
        while b"Started Serve" not in log.read_bytes():  # serve.start is done; the replicas are not yet
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    text = log.read_text(errors="replace")
    assert "stopped before Ray Serve had started" in text and "serving on Ray Serve" not in text
