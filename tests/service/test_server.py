"""The service as users run it: `onlstm serve` (uvicorn) in a subprocess on a free
loopback port, reached over real HTTP.  """

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from onlstm.models.parser import Parser

from ..helpers import REPO, free_port, read_metric, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--checkpoint", str(tiny_checkpoint)]
    # a long batching window makes concurrent requests share batches even on a loaded machine
    env = {"ONLSTM_BATCH_MAX_WAIT_MS": "50", "ONLSTM_MAX_BODY_BYTES": "4096", "ONLSTM_THREADS": "1"}
    with running_server(command, port, log, env) as base:
        yield base


def test_each_input_form_over_http(server):
    text = "The cat sat on the mat. A dog chased it."
    by_text = httpx.post(f"{server}/parse", json={"text": text}).json()["results"]
    by_sentences = httpx.post(f"{server}/parse", json={"sentences": ["The cat sat on the mat.", "A dog chased it."]}).json()["results"]
    by_tokens = httpx.post(f"{server}/parse", json={"tokens": [result["tokens"] for result in by_text]}).json()["results"]
    assert [result["tokens"] for result in by_text] == [["The", "cat", "sat", "on", "the", "mat", "."],
                                                        ["A", "dog", "chased", "it", "."]]
    for first, second, third in zip(by_text, by_sentences, by_tokens):
        assert first["tokens"] == second["tokens"] == third["tokens"]
        assert first["tree"] == second["tree"] == third["tree"]
        assert first["spans"] == second["spans"] == third["spans"]
        assert first["perplexity"] > 0 and first["perplexity"] == pytest.approx(third["perplexity"])
        assert [text[start:end] for start, end in first["offsets"]] == first["tokens"]


def test_health_ready_model_metrics_and_page_over_http(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server}/ready").json()["status"] == "ready"
    assert httpx.get(f"{server}/model").json()["n_layers"] == 3
    assert "onlstm_http_requests_total" in httpx.get(f"{server}/metrics").text
    assert "<svg" not in httpx.get(f"{server}/").text  # drawn by the page's script, not served
    assert httpx.get(f"{server}/static/app.js").status_code == 200


def test_errors_over_http(server):
    response = httpx.post(f"{server}/parse", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    response = httpx.post(f"{server}/parse", json={"tokens": "oops"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    response = httpx.post(f"{server}/parse", json={"text": "word " * 2000})
    assert response.status_code == 413 and response.json()["error"]["limit"] == "max_body_bytes"


def test_chunked_body_over_the_limit_is_refused_without_reading_it_all(server):
    """A raw chunked upload (no Content-Length) larger than ONLSTM_MAX_BODY_BYTES gets 413."""
    host, port = server.removeprefix("http://").split(":")
    chunk = b'{"text": "' + b"word " * 400
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /parse HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may answer and close before we finish
            for _ in range(5):  # 10 KB in all, never declared up front
                connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            connection.sendall(b"0\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            while part := connection.recv(65536):
                answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body_too_large" in body


def test_concurrent_requests_get_their_own_results(server, tiny_checkpoint):
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "chased", "into", "garden", "stocks", "fell",
             "company", "said", "it", "expects", "earnings", "to", "rise", "heavy", "trading"]
    # distinct sentences of different lengths, each its own request
    sentences = [[words[(index * 7 + offset * 3) % len(words)] for offset in range(2 + index % 9)] + [str(index)]
                 for index in range(40)]
    expected = Parser.load(tiny_checkpoint).parse(sentences)

    def post(tokens):
        return httpx.post(f"{server}/parse", json={"tokens": [tokens]}, timeout=60).json()["results"][0]

    before = read_metric(server, "onlstm_batch_sentences_count")
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, sentences))
    batches = read_metric(server, "onlstm_batch_sentences_count") - before
    for tokens, answer, alone in zip(sentences, answers, expected):
        assert answer["tokens"] == tokens
        assert answer["spans"] == [list(span) for span in alone.spans]
        assert answer["distances"] == pytest.approx(alone.distances, abs=1e-5)
        assert answer["perplexity"] == pytest.approx(alone.perplexity, rel=1e-4)
    assert batches < len(sentences), "concurrent requests should have shared model calls"


def test_bad_settings_stop_the_command_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "onlstm", "serve", "--port", "99999"], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={**os.environ, "ONLSTM_MAX_SENTENCES": "many"})
    assert result.returncode == 2
    # each named as the user gave it: the flag typed, the variable set
    assert "--port=99999" in result.stderr and "ONLSTM_MAX_SENTENCES='many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_the_bundled_model_missing_or_broken(tmp_path):
    """A broken checkpoint keeps the server up (health 200) with /ready 503 and the reason."""
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\0" * 100)
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "-m", "onlstm", "serve", "--port", str(port), "--checkpoint", str(broken)],
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        readiness = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                response = httpx.get(f"{base}/ready", timeout=2)
                readiness = response.json()
                if readiness["status"] != "loading":
                    break
            time.sleep(0.1)
        assert readiness is not None and readiness["status"] == "failed", log.read_text()
        assert response.status_code == 503 and "broken.safetensors" in readiness["error"]
        assert httpx.get(f"{base}/health").status_code == 200
        assert "cannot serve" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
    json.dumps(readiness)  # the reason is plain JSON
