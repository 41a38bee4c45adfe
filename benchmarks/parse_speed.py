"""Corpus parsing: ``onlstm parse`` on Brown sentences (trees and perplexity), sentences/s and peak memory.

The command runs as its own process (``python -m onlstm parse``, jsonl to /dev/null, one
pre-tokenized sentence per line), once per corpus size; its peak resident memory comes from
the kernel's accounting of that child alone (``os.wait4``).  Brown has about 57,000
sentences: larger sizes cycle through it.  Sizes: 20,000 and 200,000 sentences (``--quick``:
2,000 and 20,000); ``parse_sentences_per_second`` is the rate on 20,000 either way, and
``parse_rss_growth`` how much higher the peak memory of the larger run is than of the smaller.
On a machine with two cores or more the 20,000 sentences are parsed again with ``--workers
2`` (``parse_sentences_per_second_workers``): two processes of one thread each, whose Python
work (trees, output) overlaps the other's model arithmetic; their memory is the sum of the
processes' resident sets, sampled every 0.1 s.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import default_checkpoint


def brown_sentences(count: int) -> list[list[str]]:
    """``count`` Brown sentences, cycling through the corpus when it has fewer."""
    from onlstm.training.corpora import read_corpus

    corpus = [sentence for sentence in read_corpus("brown") if sentence]
    return list(itertools.islice(itertools.cycle(corpus), count))


def parse_file(path: Path, checkpoint: Path, extra: list[str]) -> tuple[float, float]:
    """Run ``onlstm parse`` on ``path``; returns (seconds, peak resident memory in MB)."""
    command = [sys.executable, "-m", "onlstm", "parse", str(path), "--input-format", "tokens", "--format", "jsonl",
               "-o", os.devnull, "--checkpoint", str(checkpoint), *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with status {process.returncode}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def run(quick: bool = False, extra: list[str] | None = None) -> dict:
    sizes = (2_000, 20_000) if quick else (20_000, 200_000)
    checkpoint, description = default_checkpoint()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = Path(folder) / f"brown-{size}.txt"
            path.write_text("".join(" ".join(tokens) + "\n" for tokens in brown_sentences(size)))
            load_before = os.getloadavg()[0]
            seconds, peak_mb = parse_file(path, checkpoint, extra or [])
            rows.append({
                "sentences": size, "seconds": round(seconds, 1), "sentences_per_second": round(size / seconds, 1),
                "peak_rss_mb": round(peak_mb), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            })
        workers = None
        if (os.cpu_count() or 1) >= 2 and not extra:
            seconds, peak_mb = parse_file_with_workers(Path(folder) / "brown-20000.txt", checkpoint, 2)
            workers = {"workers": 2, "sentences": 20_000, "seconds": round(seconds, 1),
                       "sentences_per_second": round(20_000 / seconds, 1), "peak_rss_mb": round(peak_mb)}
    rate = {row["sentences"]: row["sentences_per_second"] for row in rows}
    return {
        "benchmark": "parse",
        "model": description,
        "command": "python -m onlstm parse FILE --input-format tokens --format jsonl -o /dev/null " + " ".join(extra or []),
        "rows": rows,
        "parse_sentences_per_second": rate[20_000],
        "parse_peak_rss_mb": {row["sentences"]: row["peak_rss_mb"] for row in rows},
        "parse_rss_growth": round(rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1.0, 3),
        "workers_row": workers,
        "parse_sentences_per_second_workers": workers["sentences_per_second"] if workers else None,
    }


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (0 for what has gone)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


def parse_file_with_workers(path: Path, checkpoint: Path, workers: int) -> tuple[float, float]:
    """``onlstm parse --workers N`` on ``path``; (seconds, peak of the summed resident memory in MB)."""
    command = [sys.executable, "-m", "onlstm", "parse", str(path), "--input-format", "tokens", "--format", "jsonl",
               "-o", os.devnull, "--checkpoint", str(checkpoint), "--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _tree_rss_mb(process.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with status {process.returncode}")
    return seconds, peak


def table(result: dict) -> list[str]:
    lines = [f"Corpus parsing, Brown sentences, trees and perplexity ({result['model']})", f"  {result['command']}"]
    for row in result["rows"]:
        lines.append(
            f"    {row['sentences']:>7} sentences: {row['sentences_per_second']:>7.1f} sentences/s "
            f"({row['seconds']:.0f} s), peak RSS {row['peak_rss_mb']} MB, load average {row['load_average']}"
        )
    lines.append(f"    peak memory of the larger run: {result['parse_rss_growth']:+.1%}")
    workers = result.get("workers_row")
    if workers:
        lines.append(f"    --workers {workers['workers']}, {workers['sentences']} sentences: "
                     f"{workers['sentences_per_second']:>7.1f} sentences/s ({workers['seconds']:.0f} s), "
                     f"peak RSS of all its processes {workers['peak_rss_mb']} MB")
    return lines
