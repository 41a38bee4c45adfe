"""Training-step throughput per precision on this machine's device (CUDA when present).

fp32 runs the fused recurrence (one autograd node per layer, TF32 products on a GPU); bf16
autocast goes through the per-step path, where autograd records every small kernel.  The
ON-LSTM recurrence is launch-bound on a GPU (B x H products of a few microseconds each), so
the kernel count decides, not the arithmetic precision.  Random token ids, Adam, 70-token
windows; the cpu preset's sizes and the paper's.
"""

from __future__ import annotations

import time

import torch

from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from onlstm.training.devices import make_autocast

SIZES = {"cpu-size": (200, 600), "paper-size": (400, 1150)}


def measure(size: str, precision: str, batch_size: int, steps: int, device: torch.device) -> dict:
    embedding_size, hidden_size = SIZES[size]
    torch.manual_seed(0)
    config = ONLSTMConfig(vocab_size=10000, embedding_size=embedding_size, hidden_size=hidden_size, n_layers=3)
    model = ONLSTMLanguageModel(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(0, config.vocab_size, (batch_size, 71), device=device)
    autocast = make_autocast(precision, device)

    def step() -> None:
        with autocast:
            output = model(ids[:, :-1])
            loss = model.token_nll(output.hidden, ids[:, 1:]).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: allocator, kernels, Adam state
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    seconds = (time.perf_counter() - started) / steps
    return {
        "model": size,
        "precision": precision,
        "batch": batch_size,
        "ms_per_step": round(seconds * 1000, 1),
        "tokens_per_second": round(batch_size * 70 / seconds),
    }


def run(quick: bool = False) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    steps = (5 if on_gpu else 1) if quick else (20 if on_gpu else 2)
    cases = [("cpu-size", "fp32", 32), ("cpu-size", "bf16", 32)]
    if on_gpu:  # on a CPU the larger cases take minutes and say nothing new
        cases += [("cpu-size", "fp32", 128), ("paper-size", "fp32", 32), ("paper-size", "bf16", 32)]
        cases += [("paper-size", "fp32", 128)]
    rows = [measure(size, precision, batch, steps, device) for size, precision, batch in cases]
    return {
        "benchmark": "precision",
        "device": str(torch.cuda.get_device_name(device) if on_gpu else "cpu"),
        "rows": rows,
    }


def table(result: dict) -> list[str]:
    lines = [f"training step throughput per precision ({result['device']})"]
    lines.append(f"{'model':<11} {'precision':<9} {'batch':>5} {'ms/step':>9} {'tokens/s':>10}")
    for row in result["rows"]:
        lines.append(
            f"{row['model']:<11} {row['precision']:<9} {row['batch']:>5} {row['ms_per_step']:>9.1f} "
            f"{row['tokens_per_second']:>10,}"
        )
    return lines
