"""SIGTERM while requests are in flight: they all finish with full answers, new connections are
refused, and ``onlstm serve`` exits 0 after the graceful shutdown."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..helpers import ServerProcess

pytestmark = pytest.mark.slow


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(tiny_checkpoint, tmp_path):
    # a long batching window holds the requests in the service (queued for the model) for a second,
    # and large requests keep the model busy after that: SIGTERM surely lands while they are in flight
    env = {"ONLSTM_BATCH_MAX_WAIT_MS": "1000", "ONLSTM_BATCH_MAX_SENTENCES": "10000"}
    server = ServerProcess(tiny_checkpoint, tmp_path / "server.log", env)
    try:
        server.wait_ready()
        requests = [
            {"tokens": [[f"w{index}", "the", "cat", "sat", "on", "the", "mat"] * (4 + index % 5)
                        for _ in range(64 + index)]}
            for index in range(16)
        ]

        def post(request: dict) -> httpx.Response:
            return httpx.post(f"{server.base}/parse", json=request, timeout=60)

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            futures = [pool.submit(post, request) for request in requests]
            deadline = time.monotonic() + 30
            while server.metric("onlstm_parse_requests_in_flight") < len(requests) // 2:
                assert time.monotonic() < deadline, "the requests were never in flight together"
                time.sleep(0.02)
            sent_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            refused = False
            while not refused and time.monotonic() < sent_at + 5:  # no new connections once shutting down
                try:
                    httpx.get(f"{server.base}/health", timeout=1)
                    time.sleep(0.05)
                except httpx.TransportError:
                    refused = True
            responses = [future.result() for future in futures]
            assert refused, "the server still accepted new connections 5 s after SIGTERM"
        for request, response in zip(requests, responses):
            assert response.status_code == 200, response.text[:300]
            results = response.json()["results"]
            assert [result["tokens"] for result in results] == request["tokens"]
        status = server.process.wait(timeout=30)
        assert time.monotonic() - sent_at < 15, "the shutdown took longer than the graceful timeout"
    finally:
        server.kill()
    log = server.log_text()
    assert status == 0, f"exit status {status}:\n{log[-3000:]}"
    assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]
