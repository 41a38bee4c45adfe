"""Service load: single-sentence requests against a real uvicorn on loopback.

Simulated users (``concurrency`` of them) each keep one keep-alive connection and send one dev
sentence of 20-30 tokens (as tokens) after another, until a request count or a time bound is
reached: throughput, p50 and p95 latency at concurrency 1, 8 and 32, with the service's
defaults.  The load generator runs on the same cores as the server, so it is lean: plain
HTTP/1.1 over asyncio streams, the requests encoded once (an httpx client pool cost about
1.3 ms of CPU a request, which the server's batches waited for).

``server_cpu_overhead``: the server process's CPU time per request at concurrency 32 (from
/proc, so the load generator is not counted) against the model's CPU time per sentence in
batches of 32 alone (``Parser.parse_many``, in a process tuned as ``onlstm serve`` tunes itself):
1.0 would be a server that adds nothing to the model's own work.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import default_checkpoint, dev_sentences
from benchmarks.server import Server
from onlstm.service.preparation import cpu_seconds as process_cpu_seconds

CONCURRENCY = (1, 8, 32)
OVERHEAD_CONCURRENCY = 32
MODEL_BATCH = 32


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads: the service's own reader of
    /proc/PID/stat (``onlstm.service.preparation.cpu_seconds``), which says None off Linux."""
    seconds = process_cpu_seconds(pid)
    if seconds is None:
        raise RuntimeError(f"no CPU time for process {pid}: this benchmark reads Linux's /proc")
    return seconds


def encode_request(port: int, tokens: list[str]) -> bytes:
    body = json.dumps({"tokens": [tokens]}).encode()
    head = (f"POST /parse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a keep-alive connection and read its whole response; its status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def load(port: int, requests_encoded: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        nonlocal issued, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < requests and time.perf_counter() < deadline:
                request = requests_encoded[issued % len(requests_encoded)]
                issued += 1
                started = time.perf_counter()
                if await exchange(reader, writer, request) == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
    }


# Run in a fresh interpreter: the process must be tuned (tune_process) before torch is imported,
# as `onlstm serve` tunes itself; the benchmark's own process has imported torch long before.
MODEL_CPU_SCRIPT = """
import json, sys, time
from onlstm.service.runtime import tune_process
tune_process()
from onlstm.models.parser import Parser
checkpoint, batch = sys.argv[1], int(sys.argv[2])
sentences = json.loads(sys.stdin.read())
parser = Parser.load(checkpoint)
batches = [sentences[start:start + batch] for start in range(0, len(sentences) - batch + 1, batch)]
parser.parse_many(batches[0], batch_size=batch)
started = time.process_time()
for rows in batches:
    parser.parse_many(rows, batch_size=batch)
print(1000 * (time.process_time() - started) / (len(batches) * batch))
"""


def model_cpu_ms_per_sentence(checkpoint: Path, sentences: list[list[str]], batch: int) -> float:
    """The model's CPU time per sentence in batches of ``batch``, alone, in a process tuned like the server's."""
    measured = subprocess.run([sys.executable, "-c", MODEL_CPU_SCRIPT, str(checkpoint), str(batch)],
                              input=json.dumps(sentences), capture_output=True, text=True, check=True)
    return float(measured.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    checkpoint, description = default_checkpoint()
    sentences = [tokens for tokens in dev_sentences() if 20 <= len(tokens) <= 30]
    requests = {1: 30, 8: 120, 32: 240} if quick else {1: 100, 8: 400, 32: 800}
    seconds = 20.0 if quick else 60.0
    load_before = os.getloadavg()[0]
    rows = []
    with Server(checkpoint) as server:
        encoded = [encode_request(server.port, tokens) for tokens in sentences]
        asyncio.run(load(server.port, encoded, 8, 16, 10.0))  # warm-up: connections, allocator
        for concurrency in CONCURRENCY:
            cpu_before = cpu_seconds(server.process.pid)
            result = asyncio.run(load(server.port, encoded, concurrency, requests[concurrency], seconds))
            result["server_cpu_ms_per_request"] = 1000 * (cpu_seconds(server.process.pid) - cpu_before) / max(
                1, result["requests"] + result["errors"])
            rows.append(result)
        memory = server.memory()
    model_cpu = model_cpu_ms_per_sentence(checkpoint, sentences, MODEL_BATCH)
    by_concurrency = {row["concurrency"]: row for row in rows}
    server_cpu = by_concurrency[OVERHEAD_CONCURRENCY]["server_cpu_ms_per_request"]
    return {
        "benchmark": "service_load",
        "model": description,
        "mean_tokens": statistics.mean(map(len, sentences)),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "rows": rows,
        "memory": memory,
        "p95_ms_c8": round(by_concurrency[8]["p95_ms"], 1),
        "p50_ms_c1": round(by_concurrency[1]["p50_ms"], 1),
        "server_cpu_ms_per_request_c32": round(server_cpu, 3),
        "model_cpu_ms_per_sentence_b32": round(model_cpu, 3),
        "server_cpu_overhead": round(server_cpu / model_cpu, 2),
    }


def table(result: dict) -> list[str]:
    lines = [
        f"Service on loopback (uvicorn subprocess), {result['model']}; one sentence of "
        f"~{result['mean_tokens']:.0f} tokens per request; load average {result['load_average'][0]:.1f} "
        f"-> {result['load_average'][1]:.1f}",
        "    concurrency   requests   req/s     p50 ms    p95 ms   errors   server CPU ms/request",
    ]
    for row in result["rows"]:
        lines.append(
            f"    {row['concurrency']:>11}   {row['requests']:>8}   {row['throughput']:>6.1f}"
            f"   {row['p50_ms']:>7.1f}   {row['p95_ms']:>7.1f}   {row['errors']:>6}"
            f"   {row['server_cpu_ms_per_request']:>8.2f}"
        )
    lines.append(
        f"    p50 alone {result['p50_ms_c1']:.1f} ms; p95 at concurrency 8 {result['p95_ms_c8']:.1f} ms; server CPU "
        f"{result['server_cpu_ms_per_request_c32']:.2f} ms a request at 32 against the model's "
        f"{result['model_cpu_ms_per_sentence_b32']:.2f} ms a sentence in batches of 32: "
        f"server_cpu_overhead {result['server_cpu_overhead']:.2f}"
    )
    return lines
