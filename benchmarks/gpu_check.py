"""The GPU check of issue 14, item 2, in one short script (under 5 minutes on one H100).

    python -m benchmarks.gpu_check            # prints a table and one JSON line
    python -m benchmarks.gpu_check --steps 5  # shorter

At paper sizes (3x1150, embedding 400, vocabulary 10k, BPTT 70, SGD lr 30, the paper's
dropouts), batch 20 and batch 128: tokens/s of the reference implementation's step
(``ReferenceRunner(..., device="cuda")`` from ``../shared/peers``, or ``$ONLSTM_PEERS``), of our
eager step, of our step replayed as a CUDA graph (``training.step.TrainStep``), and of the step as
``onlstm train`` takes it with ``cuda_graphs`` (the graph without the optimizer, which steps
outside it after the host has checked the loss and norm); then, with every
dropout off, the losses of the eager and the replayed step on the same windows from the same
weights, which must agree to float32 rounding.  Steps are interleaved; each rate is the median
of ``--steps`` timed steps after ``warmup_steps + 1`` untimed ones.  No test needs this script.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time

import torch

from benchmarks.train_speed import reference_runner
from onlstm.models.network.onlstm import ONLSTMLanguageModel
from onlstm.training.config import load_preset
from onlstm.training.step import TrainStep

NO_DROPOUT = ["model.dropout_output=0", "model.dropout_hidden=0", "model.dropout_input=0", "model.dropout_embedding=0",
              "model.dropconnect=0"]


def make_step(model: ONLSTMLanguageModel, config, cuda_graphs: bool) -> TrainStep:
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return TrainStep(model, optimizer, config.batch_size, alpha=config.alpha, beta=config.beta, clip=config.clip,
                     cuda_graphs=cuda_graphs)


def trainer_step(model: ONLSTMLanguageModel, config):
    """What ``onlstm train`` does per window with ``cuda_graphs``: the replayed forward, backward and
    clipping, then the loss and norm read on the host (to skip a bad step) and the optimizer
    stepped outside the graph."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    graphed = TrainStep(model, None, config.batch_size, alpha=config.alpha, beta=config.beta, clip=config.clip,
                        cuda_graphs=True)

    def step(inputs, targets):
        nll, gradient_norm = graphed.step(inputs, targets)
        if math.isfinite(nll.item()) and math.isfinite(gradient_norm.item()):
            optimizer.step()
        return nll

    return step


def timed(step, inputs, targets) -> float:
    torch.cuda.synchronize()
    started = time.perf_counter()
    step(inputs, targets)
    torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(batch_size: int, steps: int) -> dict:
    config = load_preset("gpu-paper").override([f"batch_size={batch_size}", "optimizer=sgd"])
    torch.manual_seed(0)
    model = ONLSTMLanguageModel(config.model).cuda()
    eager = make_step(copy.deepcopy(model), config, cuda_graphs=False)
    graphed = make_step(model, config, cuda_graphs=True)
    runners = {"ours, eager": eager.step, "ours, CUDA graph": graphed.step,
               "ours, as onlstm train": trainer_step(copy.deepcopy(model), config)}
    reference = reference_runner(config, device="cuda")
    if reference is not None:
        runners = {"reference (official code)": reference.step, **runners}
    generator = torch.Generator().manual_seed(1)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for index in range(graphed.warmup_steps + 1 + steps):
        data = torch.randint(0, config.model.vocab_size, (batch_size, config.bptt + 1), generator=generator).cuda()
        for name, step in runners.items():
            seconds = timed(step, data[:, :-1], data[:, 1:])
            if index > graphed.warmup_steps:
                times[name].append(seconds)
    tokens = batch_size * config.bptt
    rates = {name: tokens / statistics.median(values) for name, values in times.items()}
    result = {"batch_size": batch_size, "tokens_per_second": {name: round(rate) for name, rate in rates.items()}}
    if reference is not None:
        result["graph_speedup_vs_reference"] = round(rates["ours, CUDA graph"] / rates["reference (official code)"], 2)
        result["train_command_speedup_vs_reference"] = round(
            rates["ours, as onlstm train"] / rates["reference (official code)"], 2
        )
    result["graph_speedup_vs_eager"] = round(rates["ours, CUDA graph"] / rates["ours, eager"], 2)
    result["max_loss_difference_without_dropout"] = loss_difference(config, steps)
    return result


def loss_difference(config, steps: int) -> float:
    """Largest |eager - replayed| NLL over the same windows from the same weights, dropout off."""
    quiet = config.override(NO_DROPOUT)
    torch.manual_seed(0)
    model = ONLSTMLanguageModel(quiet.model).cuda()
    eager, graphed = make_step(copy.deepcopy(model), quiet, False), make_step(model, quiet, True)
    generator = torch.Generator().manual_seed(2)
    largest = 0.0
    for _ in range(graphed.warmup_steps + 1 + steps):
        data = torch.randint(0, quiet.model.vocab_size, (quiet.batch_size, quiet.bptt + 1), generator=generator).cuda()
        losses = [step.step(data[:, :-1], data[:, 1:])[0].item() for step in (eager, graphed)]
        largest = max(largest, abs(losses[0] - losses[1]))
    return largest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (default 10)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = [measure(batch_size, args.steps) for batch_size in (20, 128)]
    print(f"Device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for result in results:
        print(f"  paper sizes, batch {result['batch_size']}:")
        for name, rate in result["tokens_per_second"].items():
            print(f"    {name:<27} {rate:>9} tok/s")
        print(f"    CUDA graph vs reference {result.get('graph_speedup_vs_reference', 'n/a')}x, vs eager "
              f"{result['graph_speedup_vs_eager']}x; max |loss eager - graph| without dropout "
              f"{result['max_loss_difference_without_dropout']:.2e}")
    print(json.dumps({"benchmark": "gpu_check", "device": torch.cuda.get_device_name(), "results": results,
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
