"""Two `onlstm serve` replicas behind HAProxy with the repository's own configuration
(deploy/haproxy/haproxy.cfg), under steady load; one replica gets SIGTERM mid-load. The client
sees no failure at all, the drained replica exits 0, and the other carries the rest."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest

from onlstm.models.parser import DEFAULT_CHECKPOINT

from ..helpers import REPO, ServerProcess, free_port, serving, wait_until_answering

pytestmark = pytest.mark.slow

HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
CLIENTS = 4
# a request takes the model a few tenths of a second: the leaving replica has work in hand, and
# requests keep reaching it until the balancer's health check sees its /ready say 503
SENTENCES = [["the", "cat", "sat", "on", "the", "mat", "in", "the", "garden", "of", "the", "house"]] * 40


def start_haproxy(replicas: list[ServerProcess], port: int, log_path) -> subprocess.Popen:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if haproxy is None:
        pytest.skip("HAProxy is not installed (.ci/run installs Debian's package: apt-get install haproxy)")
    environment = {**os.environ, "ONLSTM_BALANCER_BIND": f"127.0.0.1:{port}",
                   **{f"ONLSTM_REPLICA_{index}": f"127.0.0.1:{replica.port}"
                      for index, replica in enumerate(replicas, start=1)}}
    with open(log_path, "wb") as log:
        return subprocess.Popen([haproxy, "-db", "-f", str(HAPROXY_CONFIG)], env=environment, stdout=log,
                                stderr=subprocess.STDOUT)


class SteadyLoad:
    """``CLIENTS`` threads, each sending one parse request after another through the balancer."""

    def __init__(self, base: str):
        self.base = base
        self.stop = threading.Event()
        self.answered: list[float] = []  # when each request was answered in full
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/parse", json={"tokens": SENTENCES})
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                elif [result["tokens"] for result in response.json()["results"]] != SENTENCES:
                    self.failures.append("wrong results")
                else:
                    self.answered.append(time.monotonic())

    def __enter__(self) -> SteadyLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def test_a_replica_drains_behind_haproxy_under_load_without_a_client_failure(tmp_path):
    # a drain deadline of 0: whatever waits in its queue, and whatever arrives, is refused unparsed
    # (503 shutting_down), for the balancer to send to the other replica
    leaving = ServerProcess(DEFAULT_CHECKPOINT, tmp_path / "leaving.log", {"ONLSTM_DRAIN_TIMEOUT_S": "0"})
    try:
        with serving(DEFAULT_CHECKPOINT, tmp_path / "staying.log") as staying:
            leaving.wait_ready()
            port = free_port()
            balancer = start_haproxy([leaving, staying], port, tmp_path / "haproxy.log")
            try:
                base = f"http://127.0.0.1:{port}"
                wait_until_answering(base, "/ready", balancer, tmp_path / "haproxy.log", timeout=20)
                with SteadyLoad(base) as load:
                    time.sleep(3)
                    before = len(load.answered)
                    assert leaving.metric("onlstm_sentences_parsed_total") > 0, "the balancer never used one replica"
                    # two requests in it: one parsed, one queued behind it (40 + 40 sentences exceed a
                    # batch's 64), which the drain refuses
                    deadline = time.monotonic() + 10
                    while leaving.metric("onlstm_parse_requests_in_flight") < 2:
                        assert time.monotonic() < deadline, "the leaving replica never held two requests"
                    leaving.process.send_signal(signal.SIGTERM)
                    status = leaving.process.wait(timeout=40)
                    exited = time.monotonic()
                    time.sleep(2)
                after_exit = sum(1 for answered in load.answered if answered > exited)
            finally:
                balancer.terminate()
                balancer.wait(10)
    finally:
        leaving.kill()
    log = leaving.log_text()
    drained = re.search(r"drained in [\d.]+ s: (\d+) requests finished, (\d+) refused", log)
    print(f"{before} requests answered before SIGTERM, {len(load.answered)} in all, {after_exit} after the drained "
          f"replica exited; its drain: {drained[0] if drained else 'no log line'}")
    assert not load.failures, load.failures[:5]
    assert status == 0, log[-3000:]
    assert drained and int(drained[2]) >= 1, log[-3000:]  # refused unparsed, sent again by the balancer
    assert after_exit >= CLIENTS, "the remaining replica did not carry the load"
