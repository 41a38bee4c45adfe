"""Training throughput: tokens/s of a full optimizer step, fast model against the plain baseline.

A step is what ``training.train`` does per window: ``accumulate_gradients`` (forward,
token NLL, AR/TAR, backward, FGM when on), gradient clipping, and the optimizer step.
Both models start from the same weights and seed and see the same windows; their steps
are interleaved so that background load affects both alike, and the first step's
losses are compared to show that they compute the same thing.

Rows: the paper-sized model (``gpu-paper`` preset) and the default model's config
(``cpu`` preset), each for the plain baseline, the per-step autograd path of
``models.onlstm`` (the implementation before the fused recurrence), and the fused path;
then the fused path with gradient accumulation and with FGM, to show their overhead.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from benchmarks.plain_onlstm import PlainONLSTMLanguageModel
from onlstm.models.onlstm import ONLSTMLanguageModel
from onlstm.training.config import TrainConfig, load_preset
from onlstm.training.train import accumulate_gradients, make_optimizer

NO_AUTOCAST = torch.autocast("cpu", enabled=False)


class Runner:
    """One model, its optimizer and its carried hidden states, stepping like ``training.train``."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig):
        self.model = model.train()
        self.config = config
        self.optimizer = make_optimizer(config, model)
        self.states = [model.init_state(config.batch_size) for _ in range(config.accumulate)]
        self.fgm = None
        if config.adversarial_epsilon > 0:
            from onlstm.training.adversarial import FGM

            self.fgm = FGM(model.embedding, config.adversarial_epsilon)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """One optimizer step; returns (seconds, loss)."""
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss, self.states = accumulate_gradients(
            self.model, inputs, targets, self.states, self.config, self.fgm, NO_AUTOCAST
        )
        if self.config.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        return time.perf_counter() - started, loss


def build(preset: str, **overrides) -> tuple[TrainConfig, ONLSTMLanguageModel]:
    config = load_preset(preset).override([f"{key}={value}" for key, value in overrides.items()])
    torch.manual_seed(config.seed)
    model = ONLSTMLanguageModel(config.model)
    return config, model


def measure(preset: str, steps: int, seed: int = 0) -> dict:
    """Plain, per-step and fused models on the same windows, interleaved; tokens/s of each."""
    config, fast = build(preset)
    stepwise = copy.deepcopy(fast)
    for layer in stepwise.layers:
        layer.fused = False
    plain = PlainONLSTMLanguageModel(fast.config)
    plain.load_state_dict(fast.state_dict())
    accumulate_config = config.override([f"batch_size={config.batch_size // 2}", "accumulate=2"])
    fgm_config = config.override(["adversarial_epsilon=0.01"])
    runners = {
        "plain": Runner(plain, config),
        "per-step autograd": Runner(stepwise, config),
        "fused": Runner(fast, config),
        "fused + accumulate 2": Runner(copy.deepcopy(fast), accumulate_config),
        "fused + FGM": Runner(copy.deepcopy(fast), fgm_config),
    }
    generator = torch.Generator().manual_seed(seed)
    batch, length = config.batch_size, config.bptt
    times: dict[str, list[float]] = {name: [] for name in runners}
    first_losses: dict[str, float] = {}
    for index in range(steps + 1):  # the first step warms up allocators and caches: not timed
        data = torch.randint(0, config.model.vocab_size, (batch, length + 1), generator=generator)
        inputs, targets = data[:, :-1], data[:, 1:]
        for name, runner in runners.items():
            torch.manual_seed(seed + index)  # the same dropout masks for every model
            seconds, loss = runner.step(inputs, targets)
            if index == 0:
                first_losses[name] = loss
            else:
                times[name].append(seconds)
    tokens = batch * length
    rows = []
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rows.append({"implementation": name, "seconds_per_step": median, "tokens_per_second": tokens / median})
    rate = {row["implementation"]: row["tokens_per_second"] for row in rows}
    return {
        "preset": preset,
        "model": f"{fast.config.n_layers}x{fast.config.hidden_size} emb {fast.config.embedding_size} "
        f"vocab {fast.config.vocab_size}, batch {batch}, bptt {length}",
        "rows": rows,
        "speedup_vs_plain": rate["fused"] / rate["plain"],
        "speedup_vs_per_step_autograd": rate["fused"] / rate["per-step autograd"],
        "loss_difference_plain_vs_fused": abs(first_losses["plain"] - first_losses["fused"]),
        "accumulate_overhead": rate["fused"] / rate["fused + accumulate 2"] - 1.0,
        "fgm_overhead": rate["fused"] / rate["fused + FGM"] - 1.0,
    }


def run(quick: bool = False) -> dict:
    steps = 2 if quick else 5
    paper = measure("gpu-paper", steps)
    default = measure("cpu", steps)
    return {
        "benchmark": "train_speed",
        "threads": torch.get_num_threads(),
        "train_speedup": round(paper["speedup_vs_plain"], 2),
        "train_speedup_default": round(default["speedup_vs_plain"], 2),
        "paper": paper,
        "default": default,
    }


def table(result: dict) -> list[str]:
    lines = [f"Training step, tokens/s ({result['threads']} threads), forward + backward + clip + optimizer"]
    for key in ("paper", "default"):
        section = result[key]
        lines.append(f"  {section['preset']}: {section['model']}")
        for row in section["rows"]:
            lines.append(
                f"    {row['implementation']:<24} {row['tokens_per_second']:>9.0f} tok/s"
                f"   {row['seconds_per_step'] * 1000:>8.0f} ms/step"
            )
        lines.append(
            f"    speed-up vs plain {section['speedup_vs_plain']:.2f}x, vs per-step autograd "
            f"{section['speedup_vs_per_step_autograd']:.2f}x; |loss plain - fused| "
            f"{section['loss_difference_plain_vs_fused']:.1e}; overhead of accumulate 2: "
            f"{section['accumulate_overhead']:+.0%}, of FGM: {section['fgm_overhead']:+.0%}"
        )
    return lines
