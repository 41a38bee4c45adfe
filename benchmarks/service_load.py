"""Service load: single-sentence requests against a real uvicorn on loopback.

An asyncio client (httpx) keeps ``concurrency`` requests in flight, each one dev
sentence of 20-30 tokens sent as tokens, until a request count or a time bound is
reached.  Throughput, p50 and p95 latency at concurrency 1, 8 and 32, with the
service's micro-batching on (its defaults) and off (``ONLSTM_BATCH_MAX_SENTENCES=1``:
one model call per request).  The client runs on the same machine as the server and
takes some of its CPU; it is the same client for both settings.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from benchmarks.common import default_checkpoint, dev_sentences
from benchmarks.server import Server

CONCURRENCY = (1, 8, 32)
SETTINGS = {
    "batching on": {},
    "batching off": {"ONLSTM_BATCH_MAX_SENTENCES": "1", "ONLSTM_BATCH_MAX_WAIT_MS": "0"},
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def load(url: str, sentences: list[list[str]], concurrency: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < requests and time.perf_counter() < deadline:
                tokens = sentences[issued % len(sentences)]
                issued += 1
                started = time.perf_counter()
                response = await client.post("/parse", json={"tokens": [tokens]})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
    }


def run(quick: bool = False) -> dict:
    checkpoint, description = default_checkpoint()
    sentences = [tokens for tokens in dev_sentences() if 20 <= len(tokens) <= 30]
    requests = {1: 30, 8: 120, 32: 240} if quick else {1: 100, 8: 400, 32: 800}
    seconds = 20.0 if quick else 60.0
    rows = []
    memory = {}
    for setting, environment in SETTINGS.items():
        with Server(checkpoint, environment) as server:
            asyncio.run(load(server.url, sentences, 8, 16, 10.0))  # warm-up: connections, allocator
            for concurrency in CONCURRENCY:
                result = asyncio.run(load(server.url, sentences, concurrency, requests[concurrency], seconds))
                rows.append({"setting": setting, **result})
            memory[setting] = server.memory()
    throughput = {(row["setting"], row["concurrency"]): row["throughput"] for row in rows}
    p95_c8 = next(row["p95_ms"] for row in rows if row["setting"] == "batching on" and row["concurrency"] == 8)
    p50_c1 = next(row["p50_ms"] for row in rows if row["setting"] == "batching on" and row["concurrency"] == 1)
    return {
        "benchmark": "service_load",
        "model": description,
        "mean_tokens": statistics.mean(map(len, sentences)),
        "rows": rows,
        "memory": memory,
        "batching_speedup": round(throughput["batching on", 32] / throughput["batching off", 32], 2),
        "p95_ms_c8": round(p95_c8, 1),
        "p50_ms_c1": round(p50_c1, 1),
    }


def table(result: dict) -> list[str]:
    lines = [
        f"Service on loopback (uvicorn subprocess), {result['model']}; one sentence of "
        f"~{result['mean_tokens']:.0f} tokens per request",
        "    setting        concurrency   requests   req/s     p50 ms    p95 ms   errors",
    ]
    for row in result["rows"]:
        lines.append(
            f"    {row['setting']:<14} {row['concurrency']:>11}   {row['requests']:>8}   {row['throughput']:>6.1f}"
            f"   {row['p50_ms']:>7.1f}   {row['p95_ms']:>7.1f}   {row['errors']:>6}"
        )
    lines.append(
        f"    micro-batching speed-up at concurrency 32: {result['batching_speedup']:.2f}x; "
        f"p95 at concurrency 8 (batching on): {result['p95_ms_c8']:.1f} ms; p50 alone: {result['p50_ms_c1']:.1f} ms"
    )
    return lines
