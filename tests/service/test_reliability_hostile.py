"""Issue 13's hostile classes against a real `onlstm serve`: adversarial text at the size limit
while /health is timed, clients that hang up mid-body, forged log lines through the URL, API
keys with a Unicode suffix on the wire, and every kind of bad ONLSTM_CHECKPOINT.

(Slow headers and oversized heads: test_serve_command.py; strict types, metric cardinality and
the in-process views of these classes: test_hostile.py.)"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..helpers import BAD_CHECKPOINT_KINDS, ServerProcess, make_bad_checkpoint, read_all, serving

pytestmark = pytest.mark.slow

KEY = "k" * 8 + uuid.uuid4().hex
BODY_LIMIT = 1_000_000  # the default ONLSTM_MAX_BODY_BYTES
HEALTH_BOUND_MS = 100
PUNCTUATION = list(".!?,;:-'\"()[]{}/\\*&%$#@_~`^|+=<>") + ["\u2026", "\u2014", "\u201c", "\u201d", "\u00bf", "\u3002"]


def fill(unit: str, room: int = BODY_LIMIT - 200) -> str:
    """``unit`` repeated as often as fits in a JSON body of ``room`` bytes."""
    size = len(json.dumps(unit, ensure_ascii=False).encode()) - 2
    return unit * (room // size)


def mixed_scripts(length: int, seed: int = 0) -> str:
    generator = random.Random(seed)
    blocks = [(0x41, 0x7A), (0x400, 0x44F), (0x391, 0x3C9), (0x627, 0x64A), (0x5D0, 0x5EA), (0x905, 0x939),
              (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0x1F600, 0x1F64F), (0x300, 0x36F), (0x200B, 0x200F),
              (0x3040, 0x309F), (0xE01, 0xE3A)]
    characters = []
    while len(characters) < length:
        low, high = generator.choice(blocks)
        characters.extend(chr(generator.randint(low, high)) for _ in range(generator.randint(1, 12)))
        characters.append(generator.choice([" ", "", ".", "\u3002", "!", "?", "\n"]))
    return "".join(characters[:length])


def adversarial_bodies() -> dict[str, bytes]:
    cases = {f"run of {mark!r}": {"text": fill(mark)} for mark in PUNCTUATION}
    cases.update({
        "run of '. '": {"text": fill(". ")},
        "run of '?! '": {"text": fill("?! ")},
        "run of '. A'": {"text": fill(". A")},
        "run of 'Mr. '": {"text": fill("Mr. ")},
        "run of '...\"'": {"text": fill('..."')},
        "long unbroken token": {"text": fill("a")},
        "long unbroken digits": {"text": fill("7")},
        "long URL-like token": {"text": "https://" + fill("ab/", BODY_LIMIT - 300)},
        "long hyphenated token": {"text": fill("a-")},
        "deep round brackets": {"text": "(" * 495_000 + "x" + ")" * 495_000},
        "deep mixed brackets": {"text": fill("([{")[: 330_000] + "x" + fill(")]}")[: 330_000]},
        "mixed scripts": {"text": mixed_scripts(250_000)},
        "mixed scripts, one sentence per item": {"sentences": [mixed_scripts(60, seed) for seed in range(3000)]},
        "runs of dots, one sentence per item": {"sentences": ["." * 3000] * 300},
    })
    bodies = {name: json.dumps(body, ensure_ascii=False).encode() for name, body in cases.items()}
    for name, body in bodies.items():
        assert len(body) <= BODY_LIMIT, (name, len(body))
    return bodies


PROBE = """
import sys, time, httpx
base, out = sys.argv[1], sys.argv[2]
with httpx.Client(base_url=base, timeout=5) as client, open(out, "w") as log:
    while True:
        started = time.perf_counter()
        try:
            ok = client.get("/health").status_code == 200
        except httpx.TransportError:
            ok = False
        log.write(f"{1000 * (time.perf_counter() - started):.2f} {int(ok)}\\n")
        log.flush()
        time.sleep(0.01)
"""


class HealthProbe:
    """Times GET /health every 10 ms from a process of its own (so that the test's own threads,
    sending the large bodies, cannot delay the probe), over one keep-alive connection."""

    def __init__(self, base: str, folder: Path):
        self.base, self.output = base, folder / "health-probe.txt"
        self.latencies: list[float] = []
        self.failures = 0

    def __enter__(self) -> HealthProbe:
        self.process = subprocess.Popen([sys.executable, "-c", PROBE, self.base, str(self.output)])
        deadline = time.monotonic() + 30
        while not (self.output.exists() and self.output.read_text().count("\n") >= 5):
            assert time.monotonic() < deadline, "the probe did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait()
        for line in self.output.read_text().splitlines():
            milliseconds, ok = line.split()
            self.latencies.append(float(milliseconds))
            self.failures += ok != "1"


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    env = {"ONLSTM_API_KEY": KEY, "ONLSTM_PREPARE_TIMEOUT_S": "1"}
    with serving(tiny_checkpoint, tmp_path_factory.mktemp("hostile") / "server.log", env) as process:
        yield process


def test_adversarial_text_at_the_size_limit_never_stalls_health(server, tmp_path):
    bodies = adversarial_bodies()
    answers: dict[str, tuple[int, str, float]] = {}

    def send(name: str) -> None:
        started = time.perf_counter()
        response = httpx.post(f"{server.base}/parse", content=bodies[name], timeout=60,
                              headers={"Content-Type": "application/json", "X-API-Key": KEY})
        code = response.json()["error"]["code"] if response.status_code != 200 else "-"
        answers[name] = (response.status_code, code, time.perf_counter() - started)

    with HealthProbe(server.base, tmp_path) as probe, ThreadPoolExecutor(max_workers=1) as pool:
        list(pool.map(send, bodies))
        time.sleep(0.3)
    for name, (status, code, seconds) in answers.items():
        print(f"{name:40s} {status} {code:22s} {seconds:5.2f} s")
    latencies = sorted(probe.latencies)
    print(f"/health during {len(bodies)} adversarial requests: {len(latencies)} probes, median "
          f"{latencies[len(latencies) // 2]:.1f} ms, p99 {latencies[int(0.99 * len(latencies))]:.1f} ms, "
          f"p99.9 {latencies[int(0.999 * len(latencies))]:.1f} ms, "
          f"max {latencies[-1]:.1f} ms, failures {probe.failures}; load average {os.getloadavg()[0]:.1f}")
    assert probe.failures == 0
    # 99.9% of the probes under the bound, and none near a stall: on this shared 2-core machine a
    # single probe in several thousand can wait 100-250 ms for a core whatever the server does
    # (the idle baseline reaches 20-40 ms); a request that stalled the event loop would show as
    # many probes over the bound, or one over a second
    assert latencies[int(0.999 * len(latencies))] < HEALTH_BOUND_MS, latencies[-10:]
    assert latencies[-1] < 5 * HEALTH_BOUND_MS, latencies[-10:]
    for name, (status, code, seconds) in answers.items():
        assert status in (200, 413, 422), (name, status, code)
        assert seconds < 30, (name, seconds)  # answered within the wall-clock bound (ONLSTM_MAX_QUEUE_WAIT_S)
    # the server is fine afterwards
    response = httpx.post(f"{server.base}/parse", json={"text": "The cat sat. The dog ran."}, headers={"X-API-Key": KEY})
    assert response.status_code == 200


def raw_exchange(port: int, request: bytes, hang_up: str | None = None, wait: float = 10.0) -> bytes:
    """Send ``request`` on a new connection; then close at once (``hang_up="close"``), half-close
    (``"half-close"``) or read the answer until the server closes (``None``; send Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(request)
        if hang_up == "close":
            return b""
        if hang_up == "half-close":
            connection.shutdown(socket.SHUT_WR)
        return read_all(connection, wait)


def series(server: ServerProcess) -> dict[tuple[str, str, str], float]:
    found = {}
    for line in httpx.get(f"{server.base}/metrics").text.splitlines():
        if line.startswith("onlstm_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found[labels["route"], labels["method"], labels["status"]] = float(line.rsplit(" ", 1)[1])
    return found


def test_a_client_that_hangs_up_mid_body_is_a_499_on_its_route(server):
    before = series(server)
    head = (b"POST /parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
            b"X-API-Key: " + KEY.encode() + b"\r\n\r\n")
    for hang_up in ("close", "half-close", "close", "half-close"):
        raw_exchange(server.port, head + b'{"text": "The ca', hang_up=hang_up)
    raw_exchange(server.port, head.replace(b"/parse", b"/nowhere") + b'{"text": "The ca', hang_up="close")
    time.sleep(0.5)
    after = series(server)
    new = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    print("series changed by 5 hang-ups:", new)
    assert new.get(("/parse", "POST", "499")) == 4, new
    assert new.get(("unmatched", "POST", "499")) == 1, new
    # only what the hang-ups changed: a /ready 503 met by the start-up poll while the model loaded is readiness
    assert not [key for key in new if key[2].startswith("5")], new
    assert len(re.findall(r"POST /parse -> 499 in", server.log_text())) == 4


def test_log_lines_cannot_be_forged_through_the_url(server):
    forged = b"2026-01-01%2000:00:00,000%20INFO%20onlstm.service.access:%20request%20FORGED%20POST%20/parse%20-%3E%20200"
    for separator in (b"%0a", b"%0d", b"%0d%0a", b"%e2%80%a8", b"%1b", b"%c2%85", b"%00"):
        answer = raw_exchange(server.port, b"GET /x" + separator + forged + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 404"), answer[:100]
    time.sleep(0.3)
    lines = server.log_text().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")], "a forged line reached the log"
    forged_lines = [line for line in lines if "FORGED" in line]
    assert len(forged_lines) == 7 and all(line.isascii() and line.isprintable() for line in forged_lines)
    assert all(re.search(r"onlstm\.service\.access: request [0-9a-f]{32} GET /x%", line) for line in forged_lines)
    print("a forged URL in the log:", forged_lines[0][:160])


@pytest.mark.parametrize("suffix", ["\u00a0", "\u0085", "\u2028", "\u3000"])
def test_a_key_with_a_unicode_suffix_is_refused_on_the_wire(server, suffix):
    body = b'{"tokens": [["the", "cat"]]}'
    for header in (b"Authorization: Bearer ", b"X-API-Key: "):
        for encoding in ("utf-8", "latin-1"):
            try:
                value = (KEY + suffix).encode(encoding)
            except UnicodeEncodeError:
                continue
            request = (b"POST /parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                       + header + value + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            answer = raw_exchange(server.port, request)
            assert answer.split(b" ")[1] == b"401", (suffix, header, encoding, answer[:300])
        exact = httpx.post(f"{server.base}/parse", content=body, headers={header.decode().split(":")[0]: (
            "Bearer " if header.startswith(b"Auth") else "") + KEY, "Content-Type": "application/json"})
        assert exact.status_code == 200


def test_every_kind_of_bad_checkpoint_serves_health_with_ready_503_and_the_reason(tiny_checkpoint, tmp_path):
    for kind in BAD_CHECKPOINT_KINDS:
        checkpoint = make_bad_checkpoint(tiny_checkpoint, tmp_path, kind)
        server = ServerProcess(checkpoint, tmp_path / f"{kind}.log")
        try:
            server.wait_answering()
            deadline = time.monotonic() + 60
            while (ready := httpx.get(f"{server.base}/ready")).json()["status"] == "loading":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            parse = httpx.post(f"{server.base}/parse", json={"text": "The cat sat."})
        finally:
            status = server.terminate()
        print(f"{kind:13s} /health 200, /ready {ready.status_code}: {ready.json()['error'][-110:]}")
        assert ready.status_code == 503 and ready.json()["status"] == "failed", ready.text
        assert checkpoint.name in ready.json()["error"] and "retry-after" not in ready.headers
        assert parse.status_code == 503 and parse.json()["error"]["code"] == "model_unavailable"
        assert "retry-after" not in parse.headers
        assert status == 0, server.log_text()[-2000:]
        assert "cannot serve" in server.log_text()


if __name__ == "__main__":  # the adversarial bodies' sizes, for a look
    for name, body in adversarial_bodies().items():
        sys.stdout.write(f"{name}: {len(body)} bytes\n")
