"""Corpus parsing: ``onlstm parse`` on Brown sentences (trees and perplexity), sentences/s and peak memory.

The command runs as its own process (``python -m onlstm parse``, jsonl to /dev/null, one
pre-tokenized sentence per line), once per corpus size; its peak resident memory is its own
high-water mark (``benchmarks.common.run_measuring_memory``).  Brown has about 57,000
sentences: larger sizes cycle through it.  Sizes: 20,000 and 200,000 sentences (``--quick``:
2,000 and 20,000); ``parse_sentences_per_second`` is the rate on 20,000 either way, and
``parse_rss_growth`` how much higher the peak memory of the larger run is than of the smaller.
On a machine with two cores or more the 20,000 sentences are parsed again with ``--workers
2`` (``parse_sentences_per_second_workers``): two processes of one thread each, whose Python
work (trees, output) overlaps the other's model arithmetic; their memory is the sum of the
processes' peaks.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.common import default_checkpoint, run_measuring_memory


def brown_sentences(count: int) -> list[list[str]]:
    """``count`` Brown sentences, cycling through the corpus when it has fewer."""
    from onlstm.training.corpora import read_corpus

    corpus = [sentence for sentence in read_corpus("brown") if sentence]
    return list(itertools.islice(itertools.cycle(corpus), count))


def parse_file(path: Path, checkpoint: Path, extra: list[str]) -> tuple[float, float]:
    """Run ``onlstm parse`` on ``path``; returns (seconds, peak resident memory in MB, all its processes)."""
    command = [sys.executable, "-m", "onlstm", "parse", str(path), "--input-format", "tokens", "--format", "jsonl",
               "-o", os.devnull, "--checkpoint", str(checkpoint), *extra]
    seconds, status, peak_mb, stderr = run_measuring_memory(command)
    if status:
        raise RuntimeError(f"{' '.join(command)} exited with status {status}: {stderr}")
    return seconds, peak_mb


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
            seconds, peak_mb = parse_file(Path(folder) / "brown-20000.txt", checkpoint, ["--workers", "2"])
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
