"""Peak resident memory: the running service with the default model, with every bundled
language, and a training run.

* Service: ``onlstm serve`` on loopback; after start-up, one request of the 64
  longest dev sentences (the largest model call the default micro-batch allows) and a
  burst of 32 concurrent single-sentence requests; then the process's peak RSS (VmHWM).
* Every language: a plain ``onlstm serve`` (the five bundled models); per language, one
  request of the 64 longest sentences of its dev treebank as tokens (English's PTB dev, the
  others' from ``../shared/data/multilingual``) and one of its first 32 as text, then the peak
  RSS of the server's process, and beside it that of the processes it started (the text
  preparation workers), summed.
* Training: ``python -m onlstm train --preset cpu`` (the default model's recipe) for a few
  optimizer steps and its dev evaluation; its peak RSS (VmHWM, ``run_measuring_memory``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

import httpx

from benchmarks.common import default_checkpoint, dev_sentences, run_measuring_memory
from benchmarks.server import REPO, Server
from benchmarks.service_load import encode_request, load


def service_memory() -> dict:
    checkpoint, description = default_checkpoint()
    sentences = dev_sentences()
    longest = sorted(sentences, key=len, reverse=True)[:64]
    with Server(checkpoint) as server:
        after_start = server.memory()
        response = httpx.post(f"{server.url}/parse", json={"tokens": longest}, timeout=120.0)
        response.raise_for_status()
        encoded = [encode_request(server.port, tokens) for tokens in sentences]
        asyncio.run(load(server.port, encoded, 32, 200, 30.0))
        after_load = server.memory()
    return {"model": description, "after_start": after_start, "after_load": after_load}


def languages_memory() -> dict:
    from onlstm.models.languages import bundled_languages
    from onlstm.training.treebanks import read_gold

    languages = bundled_languages()
    with Server(None) as server:
        after_start = server.memory()
        for language in languages:
            sentences = dev_sentences() if language == "en" else [list(gold.tokens) for gold in read_gold(language)]
            longest = sorted(sentences, key=len, reverse=True)[:64]
            response = httpx.post(f"{server.url}/parse", json={"tokens": longest, "language": language}, timeout=300.0)
            response.raise_for_status()
            # and text, as most users send it: the language's splitter and tokenizer load too
            # (Chinese: jieba's dictionary and OpenCC's tables)
            separator = "" if language == "zh" else " "
            text = "\n".join(separator.join(tokens) for tokens in sentences[:32])
            response = httpx.post(f"{server.url}/parse", json={"text": text, "language": language}, timeout=300.0)
            response.raise_for_status()
        after_load = server.memory()
        helpers = server.helpers_memory()
    return {"languages": list(languages), "after_start": after_start, "after_load": after_load,
            "helper_processes_after_load": helpers}


def training_memory(steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="onlstm-memory-") as out:
        command = [
            sys.executable, "-m", "onlstm", "train", "--preset", "cpu", "--out", out, "--max-steps", str(steps),
            "--set", f"eval_every={steps}", "--set", "checkpoint_every=1000000", "--log-level", "WARNING",
        ]
        _, status, peak_mb, stderr = run_measuring_memory(command, cwd=REPO)
    if status != 0:
        raise RuntimeError(f"the training run failed ({status}): {stderr[-2000:]}")
    return {"preset": "cpu", "steps": steps, "peak_rss_mb": peak_mb}


def run(quick: bool = False) -> dict:
    service = service_memory()
    languages = languages_memory()
    training = training_memory(2 if quick else 5)
    return {
        "benchmark": "memory",
        "service": service,
        "languages": languages,
        "training": training,
        "service_rss_mb": round(service["after_load"]["peak_rss_mb"], 1),
        "languages_rss_mb": round(languages["after_load"]["peak_rss_mb"], 1),
        "training_rss_mb": round(training["peak_rss_mb"], 1),
    }


def table(result: dict) -> list[str]:
    service, training = result["service"], result["training"]
    helpers = result["languages"]["helper_processes_after_load"]
    return [
        f"Peak resident memory ({service['model']})",
        f"    service: {service['after_start']['rss_mb']:.0f} MB after start-up, peak {result['service_rss_mb']:.0f} MB "
        "after a 64-sentence request and 200 requests at concurrency 32",
        f"    service, every bundled language ({', '.join(result['languages']['languages'])}): "
        f"{result['languages']['after_start']['rss_mb']:.0f} MB after start-up, peak {result['languages_rss_mb']:.0f} MB "
        "after a 64-sentence request and a text in each",
        f"        beside it, the {helpers['processes']} processes it started (text preparation): "
        f"{helpers['rss_mb']:.0f} MB resident together",
        f"    training, cpu preset, {training['steps']} steps + dev evaluation: peak {result['training_rss_mb']:.0f} MB",
    ]
