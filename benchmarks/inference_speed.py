"""Inference throughput: sentences/s over the dev sentences at batch 1, 16, 64 and 256.

Two figures per batch size:

* ``Parser.parse`` end to end (tokens -> ids -> model -> perplexity and distances ->
  spans -> ``nltk.Tree``), what a user of the library gets;
* the model alone as the parser runs it (padded, length-sorted batches; recurrence and
  the perplexity's softmax normaliser), with its matrix-product FLOP rate as a fraction
  of the best ``torch.matmul`` rate measured in the same run on the same threads; where the
  CPU has AMX units, the model alone without them too (``native.without_amx``: the
  recurrence's products on AVX-512 and PyTorch's float32 product).

FLOPs counted are the useful ones: ``2 * (input + hidden) * gates`` per layer and
``2 * embedding * vocabulary`` for the output projection, per real token (``<eos>``
included), so padding and everything that is not a matrix product count as lost time.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import default_checkpoint, dev_sentences, matmul_peak
from onlstm.models.network import native
from onlstm.models.parser import Parser

BATCH_SIZES = (1, 16, 64, 256)


def useful_flops(parser: Parser, token_lists: list[list[str]], with_perplexity: bool) -> float:
    config = parser.model.config
    per_token = sum(2 * (input_size + hidden) * (4 * hidden + 2 * hidden // config.chunk_size)
                    for input_size, hidden in config.layer_sizes())
    if with_perplexity:
        per_token += 2 * config.embedding_size * config.vocab_size
    return per_token * sum(len(tokens) + 1 for tokens in token_lists)


def best_of(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool = False) -> dict:
    checkpoint, description = default_checkpoint()
    parser = Parser.load(checkpoint)
    sentences = dev_sentences()
    parser.parse(sentences[:32], batch_size=32)  # warm-up: allocator, thread pool
    peak = matmul_peak(0.5 if quick else 2.0)
    repeats = 1 if quick else 3
    fused_kernels = native.kernels()
    amx = fused_kernels is not None and fused_kernels.amx
    # loaded without AMX, as ONLSTM_AMX=0 loads it: its W_ih stays float32 for PyTorch's product
    # (the parser above keeps W_ih in float16 for the AMX tiles: recurrence.narrow_inference_weights)
    with native.without_amx():
        parser_without_amx = Parser.load(checkpoint) if amx else None
    rows = []
    for batch_size in BATCH_SIZES:
        # batch 1 walks the sentences one by one: a subset keeps the run short
        subset = sentences[:64] if batch_size == 1 or quick else sentences
        words = [list(tokens) for tokens in subset]
        parse_seconds = best_of(lambda: parser.parse(words, batch_size=batch_size), repeats)  # noqa: B023
        # the model's part of the same work: what Parser._run does (encode, pad, forward, NLL)
        model_seconds = best_of(lambda: parser._run(words, batch_size, True), repeats)  # noqa: B023
        rate = useful_flops(parser, words, True) / model_seconds / 1e9
        without_amx = None
        if parser_without_amx is not None:
            with native.without_amx():
                without_amx = len(words) / best_of(
                    lambda: parser_without_amx._run(words, batch_size, True), repeats)  # noqa: B023
        rows.append({
            "batch_size": batch_size,
            "sentences": len(words),
            "parse_sentences_per_second": len(words) / parse_seconds,
            "model_sentences_per_second": len(words) / model_seconds,
            "model_gflops": rate,
            "matmul_fraction": rate / peak["gflops"],
            "model_sentences_per_second_without_amx": without_amx,
        })
    # the peak again after the rows: the best of both, so that a burst of background load
    # during one measurement cannot make the fractions look better than they are
    again = matmul_peak(0.5 if quick else 2.0)
    if again["gflops"] > peak["gflops"]:
        peak = again
        for row in rows:
            row["matmul_fraction"] = row["model_gflops"] / peak["gflops"]
    trees_only = best_of(lambda: parser._run([list(tokens) for tokens in sentences], 256, False), repeats)
    trees_rate = useful_flops(parser, sentences, False) / trees_only / 1e9
    at_256 = rows[-1]
    return {
        "benchmark": "inference_speed",
        "model": description,
        "threads": torch.get_num_threads(),
        "amx": amx,
        "dev_sentences": len(sentences),
        "mean_tokens": sum(map(len, sentences)) / len(sentences),
        "matmul_peak_gflops": peak["gflops"],
        "matmul_peak_shape": peak["shape"],
        "rows": rows,
        "matmul_fraction": round(at_256["matmul_fraction"], 3),
        "trees_only_sentences_per_second_b256": len(sentences) / trees_only,
        "trees_only_matmul_fraction_b256": trees_rate / peak["gflops"],
    }


def table(result: dict) -> list[str]:
    lines = [
        f"Inference over {result['dev_sentences']} dev sentences (mean {result['mean_tokens']:.1f} tokens), "
        f"{result['model']}, {result['threads']} threads; best torch.matmul {result['matmul_peak_gflops']:.1f} GFLOP/s",
        "    batch   parse sent/s   model sent/s   model GFLOP/s   of matmul peak   model without AMX",
    ]
    for row in result["rows"]:
        without = row.get("model_sentences_per_second_without_amx")
        lines.append(
            f"    {row['batch_size']:>5}   {row['parse_sentences_per_second']:>12.1f}   "
            f"{row['model_sentences_per_second']:>12.1f}   {row['model_gflops']:>13.1f}   {row['matmul_fraction']:>14.0%}"
            f"   {f'{without:.1f} sent/s' if without else 'no AMX here':>17}"
        )
    lines.append(
        f"    trees only (no perplexity), batch 256: {result['trees_only_sentences_per_second_b256']:.1f} sent/s, "
        f"{result['trees_only_matmul_fraction_b256']:.0%} of the matmul peak"
    )
    return lines
