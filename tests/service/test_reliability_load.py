"""Load against one real server on loopback, bounded in time and count.

* 5,000 requests at concurrency 64: zero 5xx, zero dropped connections, and resident memory
  after the run within 10% of what it was after the warm-up.
* Requests that wait too long in the batching queue get 503 with Retry-After (not an
  unbounded queue), and the server is healthy again once the burst is over.
* Issue 13's hostile requests (adversarial bodies at the size limit, hang-ups mid-body, made-up
  methods and paths) sent during a load of normal requests: those all succeed, the hang-ups
  are 499s, no 5xx, the metric series stay few, and the log stays printable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from onlstm.models.text import split_text

from ..helpers import serving

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "chased", "into", "garden", "stocks", "fell", "company",
         "said", "it", "expects", "earnings", "to", "rise", "heavy", "trading", "wall", "street", ".", ","]
REQUESTS = 5_000
CONCURRENCY = 64
WARM_UP_REQUESTS = 500
TIME_LIMIT_SECONDS = 240  # the run stops by itself even if the server crawls


def make_request(rng: random.Random) -> dict:
    form = rng.random()
    sentence = [rng.choice(WORDS) for _ in range(rng.randint(3, 20))]
    if form < 0.6:
        return {"tokens": [sentence]}
    if form < 0.9:
        return {"text": " ".join(sentence).capitalize() + " ."}
    return {"sentences": [" ".join(sentence), " ".join(reversed(sentence))], "all_layers": True}


def expected_results(request: dict) -> int:
    """How many results a request's answer holds: one per sentence, text split as the service splits it
    (a full stop before a lowercase word ends a sentence, so "Cat sat . a dog ran ." is two)."""
    if "text" in request:
        return len(split_text(request["text"]))
    return len(request.get("tokens") or request["sentences"])


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: httpx costs as much CPU per request as
    the server itself, and on a 2-core machine the load generator would starve the server."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        content = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection") == "close":
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def hammer(base: str, count: int, concurrency: int, seed: int) -> dict:
    """``count`` requests from ``concurrency`` workers, each on its own keep-alive connection.

    A connection that breaks (reset, closed mid-answer) is counted as a failure, never retried.
    """
    rng = random.Random(seed)
    requests = [make_request(rng) for _ in range(count)]
    bodies = [json.dumps(request).encode() for request in requests]
    host, port = base.removeprefix("http://").split(":")
    statuses: Counter = Counter()
    failures: Counter = Counter()
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        connection = Connection(host, int(port))
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                try:
                    status, content = await connection.post("/parse", bodies[index])
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as error:
                    failures[type(error).__name__] += 1
                    connection.close()
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                expected = expected_results(requests[index])
                if status == 200 and len(json.loads(content)["results"]) != expected:
                    failures["wrong result count"] += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), TIME_LIMIT_SECONDS)
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": count,
        "seconds": seconds,
        "requests_per_second": count / seconds,
        "statuses": dict(statuses),
        "failures": dict(failures),
        "median_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
    }


@pytest.fixture(autouse=True)
def quiet_client_log():
    """httpx logs every request at INFO: thousands of lines that would slow the client down."""
    client_logger = logging.getLogger("httpx")
    level = client_logger.level
    client_logger.setLevel(logging.WARNING)
    yield
    client_logger.setLevel(level)


def test_5000_requests_at_concurrency_64(tiny_checkpoint, tmp_path):
    with serving(tiny_checkpoint, tmp_path / "server.log") as server:
        warm_up = asyncio.run(hammer(server.base, WARM_UP_REQUESTS, CONCURRENCY, seed=1))
        assert warm_up["statuses"] == {200: WARM_UP_REQUESTS} and not warm_up["failures"], repr(warm_up)
        time.sleep(0.5)
        resident_after_warm_up = server.resident_bytes()
        report = asyncio.run(hammer(server.base, REQUESTS, CONCURRENCY, seed=2))
        time.sleep(0.5)
        resident_after_run = server.resident_bytes()
        logger.info(
            "load: %d requests at concurrency %d in %.1f s = %.0f requests/s; statuses %s; failures %s; "
            "median %.1f ms, p99 %.1f ms; resident memory %.1f MiB after warm-up, %.1f MiB after the run (%+.1f%%)",
            report["requests"], CONCURRENCY, report["seconds"], report["requests_per_second"], report["statuses"],
            report["failures"], report["median_ms"], report["p99_ms"], resident_after_warm_up / 2**20,
            resident_after_run / 2**20, 100 * (resident_after_run / resident_after_warm_up - 1),
        )
        assert report["failures"] == {}, repr(report)  # no dropped connections, every answer complete
        assert report["statuses"] == {200: REQUESTS}, repr(report)  # no 5xx (nor anything else)
        assert resident_after_run <= 1.10 * resident_after_warm_up, (resident_after_warm_up, resident_after_run)
        assert server.metric("onlstm_batch_requests_count") < REQUESTS + WARM_UP_REQUESTS + 10


def heavy_request(index: int) -> dict:
    return {"tokens": [[f"w{index}"] + [WORDS[(index + offset) % len(WORDS)] for offset in range(99)]
                       for _ in range(200)]}


def test_requests_that_wait_too_long_in_the_queue_get_503_with_retry_after(tiny_checkpoint, tmp_path):
    env = {"ONLSTM_MAX_QUEUE_WAIT_S": "0.1", "ONLSTM_BATCH_MAX_SENTENCES": "200", "ONLSTM_BATCH_MAX_WAIT_MS": "0"}
    with serving(tiny_checkpoint, tmp_path / "server.log", env) as server:

        async def burst() -> list[tuple[int, dict, float, str | None]]:
            async with httpx.AsyncClient(base_url=server.base, timeout=60,
                                         limits=httpx.Limits(max_connections=32)) as client:

                async def one(index: int) -> tuple[int, dict, float, str | None]:
                    started = time.perf_counter()
                    response = await client.post("/parse", json=heavy_request(index))
                    return (response.status_code, response.json(), time.perf_counter() - started,
                            response.headers.get("retry-after"))

                return await asyncio.wait_for(asyncio.gather(*(one(index) for index in range(32))), 120)

        answers = asyncio.run(burst())
        statuses = Counter(status for status, _, _, _ in answers)
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[503] > 0, f"no request waited longer than 0.1 s in the queue: {statuses}"
        assert statuses[200] > 0, statuses
        for status, body, seconds, retry_after in answers:
            if status == 503:
                assert body["error"]["code"] == "overloaded"
                assert "waited 0.1 s in the queue" in body["error"]["message"]
                assert retry_after is not None and int(retry_after) >= 1
                # refused after its queue wait, not after the whole backlog (the model call it would have
                # joined is at most one batch long)
                assert seconds < 10, seconds
            else:
                assert len(body["results"]) == 200
        logger.info("queue timeout: %s", dict(statuses))
        # the burst is over: the service answers normally again
        response = httpx.post(f"{server.base}/parse", json={"text": "The cat sat on the mat."}, timeout=60)
        assert response.status_code == 200


# --- issue 13's classes under load ----------------------------------------------------------------

HOSTILE_BODIES = [
    json.dumps({"text": "." * 990_000}).encode(),
    json.dumps({"text": "(" * 495_000 + ")" * 495_000}).encode(),
    json.dumps({"text": "a" * 990_000}).encode(),
    json.dumps({"text": "?! " * 330_000}).encode(),
]


def hostile_traffic(base: str, rounds: int) -> Counter:
    """Adversarial bodies at the size limit, clients that hang up mid-body, and made-up methods
    and paths, sent from one thread while the load runs."""
    host, port = base.removeprefix("http://").split(":")
    outcomes: Counter = Counter()
    with httpx.Client(base_url=base, timeout=60) as client:
        for round_number in range(rounds):
            body = HOSTILE_BODIES[round_number % len(HOSTILE_BODIES)]
            answer = client.post("/parse", content=body, headers={"Content-Type": "application/json"})
            outcomes[f"adversarial {answer.status_code}"] += 1
            with socket.create_connection((host, int(port))) as connection:
                connection.sendall(b"POST /parse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: 1000\r\n\r\n" + b'{"text": "The ca')
            outcomes["hang-up"] += 1
            for _ in range(20):
                method = "X" + "".join(random.choices("ABCDEF0123456789", k=8))
                path = "/" + "".join(random.choices("abcdef%0a", k=10))
                outcomes[f"random {client.request(method, path).status_code // 100}xx"] += 1
    return outcomes


def server_errors(base: str) -> dict[str, float]:
    """The request series of ``base``'s /metrics with a 5xx status, and their counts."""
    lines = httpx.get(f"{base}/metrics").text.splitlines()
    return {series: float(count) for series, count in (line.rsplit(" ", 1) for line in lines
                                                       if line.startswith("onlstm_http_requests_total{"))
            if 'status="5' in series}


def test_hostile_requests_during_load_change_nothing_for_the_others(tiny_checkpoint, tmp_path):
    with serving(tiny_checkpoint, tmp_path / "server.log", {"ONLSTM_PREPARE_TIMEOUT_S": "1"}) as server:
        # a /ready 503 while the model loads is readiness doing its work (the start-up poll may meet
        # one): only a 5xx counted from here on is the load's or the hostile traffic's doing
        errors_before = server_errors(server.base)
        asyncio.run(hammer(server.base, 200, 8, seed=3))  # warm-up: every route and status of normal traffic
        with ThreadPoolExecutor(max_workers=1) as pool:
            hostile = pool.submit(hostile_traffic, server.base, 12)
            report = asyncio.run(hammer(server.base, 2000, 16, seed=4))
            outcomes = hostile.result()
        time.sleep(0.5)
        errors_after = server_errors(server.base)
        series = [line for line in httpx.get(f"{server.base}/metrics").text.splitlines()
                  if line.startswith("onlstm_http_requests_total{")]
        log = server.log_text()
    logger.info("hostile traffic during load: %s; normal requests: %s, median %.1f ms, p99 %.1f ms; %d series",
                dict(outcomes), report["statuses"], report["median_ms"], report["p99_ms"], len(series))
    print(f"hostile: {dict(outcomes)}; normal: {report['statuses']} failures {report['failures']}, "
          f"median {report['median_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms; {len(series)} request series")
    assert report["failures"] == {} and report["statuses"] == {200: 2000}, repr(report)
    assert outcomes["adversarial 422"] + outcomes["adversarial 413"] == 12, outcomes
    assert errors_after == errors_before, (errors_before, errors_after)
    assert set(errors_before) <= {'onlstm_http_requests_total{method="GET",route="/ready",status="503"}'}, errors_before
    assert any('route="/parse",status="499"} 12.0' in line for line in series), series
    assert len(series) <= 20, series
    assert all(line.isascii() and line.isprintable() for line in log.splitlines())
