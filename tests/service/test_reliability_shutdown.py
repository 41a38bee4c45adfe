"""SIGTERM with 16 heavy requests in flight (200 sentences of 30 words each, the bundled model):
the service drains. Each request is answered in full or refused with 503 shutting_down and
Retry-After (never a 500, never a dropped connection); /ready says 503 at once while /health
stays 200; a new parse request is refused the same way; the counts are logged; exit status 0."""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from onlstm.models.parser import DEFAULT_CHECKPOINT

from ..helpers import ServerProcess

pytestmark = pytest.mark.slow

DRAIN_TIMEOUT_S = 3.0
WORDS = "the company said it expects earnings to rise as stocks fell in heavy trading on wall street".split()


def heavy_request(index: int) -> dict:
    return {"tokens": [[WORDS[(index + sentence + position) % len(WORDS)] for position in range(30)]
                       for sentence in range(200)]}


def is_refusal(response: httpx.Response) -> bool:
    return (response.status_code == 503 and response.json()["error"]["code"] == "shutting_down"
            and int(response.headers["retry-after"]) >= 1)


def test_sigterm_drains_heavy_requests_each_answered_in_full_or_refused_for_a_retry(tmp_path):
    server = ServerProcess(DEFAULT_CHECKPOINT, tmp_path / "server.log", {"ONLSTM_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)})
    try:
        server.wait_ready()
        requests = [heavy_request(index) for index in range(16)]

        def post(request: dict) -> httpx.Response:
            return httpx.post(f"{server.base}/parse", json=request, timeout=60)

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            futures = [pool.submit(post, request) for request in requests]
            deadline = time.monotonic() + 30
            while server.metric("onlstm_parse_requests_in_flight") < 12:
                assert time.monotonic() < deadline, "the requests were never in flight together"
                time.sleep(0.02)
            sent_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            while httpx.get(f"{server.base}/ready", timeout=5).status_code != 503:
                assert time.monotonic() < sent_at + 1, "/ready still said 200 a second after SIGTERM"
                time.sleep(0.01)
            assert httpx.get(f"{server.base}/ready", timeout=5).json()["status"] == "draining"
            assert httpx.get(f"{server.base}/health", timeout=5).status_code == 200
            late = httpx.post(f"{server.base}/parse", json={"tokens": [["a", "late", "request"]]}, timeout=10)
            assert is_refusal(late), late.text
            responses = [future.result() for future in futures]
        status = server.process.wait(timeout=DRAIN_TIMEOUT_S + 20)
    finally:
        server.kill()
    log = server.log_text()
    assert status == 0, f"exit status {status}:\n{log[-3000:]}"
    finished = 0
    for request, response in zip(requests, responses):
        if response.status_code == 200:
            assert [result["tokens"] for result in response.json()["results"]] == request["tokens"]
            finished += 1
        else:
            assert is_refusal(response), response.text[:300]
    refused = len(requests) - finished
    # the model needs several seconds for them all: some finish within the drain, the rest are refused
    assert finished >= 1 and refused >= 1, (finished, refused)
    counts = re.search(r"drained in [\d.]+ s: (\d+) requests finished, (\d+) refused", log)
    assert counts, log[-3000:]
    assert (int(counts[1]), int(counts[2])) == (finished, refused + 1)  # the late request was refused too
    assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]
