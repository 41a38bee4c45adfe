"""Training throughput: tokens/s of a full optimizer step, ours against the reference implementation.

A step is what ``training.trainer.Trainer`` does per window: ``accumulate_gradients`` (forward,
token NLL, AR/TAR, backward, FGM when on), gradient clipping, and the optimizer step.
The yardstick is the official ON-LSTM code's own step (``ReferenceRunner`` of
``../shared/peers/ordered-neurons/runner.py``, beside the repository, or ``$ONLSTM_PEERS``);
the row is skipped with a message when that folder is absent.  All rows see the same
windows, and their steps are interleaved so that background load affects them alike; each
speed-up is the median of the per-window ratios of step times.

Rows: the paper-sized model (``gpu-paper`` preset) and the default model's config
(``cpu`` preset), each for the reference runner, the plain oracle (``models.network.reference``:
the readable cell step by step under autograd, the correctness yardstick, started from the
same weights, its first loss compared), the fused path with the C kernels, the same path
with the pure PyTorch fallback (``native.disabled()``), and the fused path with gradient
accumulation and with FGM, to show their overhead.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import statistics
import time
from pathlib import Path

import torch

from onlstm.models.network import native
from onlstm.models.network.onlstm import ONLSTMLanguageModel
from onlstm.models.network.reference import ReferenceONLSTMLanguageModel
from onlstm.training.config import TrainConfig, load_preset
from onlstm.training.optimization import accumulate_gradients, make_optimizer

logger = logging.getLogger(__name__)

NO_AUTOCAST = torch.autocast("cpu", enabled=False)


class Runner:
    """One model, its optimizer and its carried hidden states, stepping like ``Trainer.train_step``."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, kernels: bool = True):
        self.kernels = kernels
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
        with contextlib.nullcontext() if self.kernels else native.disabled():
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


def peers_folder() -> Path:
    """``$ONLSTM_PEERS``, or ``../shared/peers`` beside the repository."""
    configured = os.environ.get("ONLSTM_PEERS")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "peers"


def reference_runner(config: TrainConfig, device: str = "cpu"):
    """The official code's training step at this config's sizes and regularisers, or None with a message."""
    path = peers_folder() / "ordered-neurons" / "runner.py"
    if not path.is_file():
        logger.warning("reference implementation not found at %s (set ONLSTM_PEERS): its row is skipped", path)
        return None
    spec = importlib.util.spec_from_file_location("ordered_neurons_runner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = config.model
    runner = module.ReferenceRunner(
        model.vocab_size, model.embedding_size, model.hidden_size, model.n_layers, model.chunk_size,
        config.batch_size, dropout_output=model.dropout_output, dropout_hidden=model.dropout_hidden,
        dropout_input=model.dropout_input, dropout_embedding=model.dropout_embedding,
        dropconnect=model.dropconnect, optimizer="sgd", lr=config.lr, weight_decay=config.weight_decay,
        clip=config.clip, alpha=config.alpha, beta=config.beta, device=device,
    )
    if config.optimizer != "sgd":
        # the runner's own Adam call passes betas=(0, 0.999), which torch >= 2.10 refuses (an int and a
        # float); the same optimizer with float betas, as the reference main.py means it
        runner.optimizer = torch.optim.Adam(
            runner.params, lr=config.lr, betas=(0.0, 0.999), eps=1e-9, weight_decay=config.weight_decay
        )
    return runner


def measure(preset: str, steps: int, seed: int = 0, with_plain: bool = True) -> dict:
    """The reference runner, the plain oracle and our paths on the same windows, interleaved."""
    config, fast = build(preset)
    accumulate_config = config.override([f"batch_size={config.batch_size // 2}", "accumulate=2"])
    fgm_config = config.override(["adversarial_epsilon=0.01"])
    runners = {}
    reference = reference_runner(config)
    if reference is not None:
        runners["reference (official code)"] = reference
    if with_plain:
        plain = ReferenceONLSTMLanguageModel(fast.config)
        plain.load_state_dict(fast.state_dict())
        runners["plain (oracle)"] = Runner(plain, config)
    runners["fused, PyTorch fallback"] = Runner(copy.deepcopy(fast), config, kernels=False)
    runners["fused"] = Runner(fast, config)
    runners["fused + accumulate 2"] = Runner(copy.deepcopy(fast), accumulate_config)
    runners["fused + FGM"] = Runner(copy.deepcopy(fast), fgm_config)
    generator = torch.Generator().manual_seed(seed)
    batch, length = config.batch_size, config.bptt
    times: dict[str, list[float]] = {name: [] for name in runners}
    first_losses: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    for index in range(steps + 1):  # the first step warms up allocators and caches: not timed
        data = torch.randint(0, config.model.vocab_size, (batch, length + 1), generator=generator)
        inputs, targets = data[:, :-1], data[:, 1:]
        for name, runner in runners.items():
            torch.manual_seed(seed + index)  # the same dropout masks for our models
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

    def speedup(baseline: str) -> float | None:
        if baseline not in times:
            return None
        return statistics.median(slow / fast for slow, fast in zip(times[baseline], times["fused"]))

    result = {
        "preset": preset,
        "model": f"{fast.config.n_layers}x{fast.config.hidden_size} emb {fast.config.embedding_size} "
        f"vocab {fast.config.vocab_size}, batch {batch}, bptt {length}, {config.optimizer}",
        "rows": rows,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "speedup_vs_reference": speedup("reference (official code)"),
        "speedup_vs_plain": speedup("plain (oracle)"),
        "speedup_vs_fallback": speedup("fused, PyTorch fallback"),
        "accumulate_overhead": statistics.median(
            slow / fast for slow, fast in zip(times["fused + accumulate 2"], times["fused"])
        ) - 1.0,
        "fgm_overhead": statistics.median(slow / fast for slow, fast in zip(times["fused + FGM"], times["fused"])) - 1.0,
    }
    if with_plain:
        result["loss_difference_plain_vs_fused"] = abs(first_losses["plain (oracle)"] - first_losses["fused"])
    return result


def run(quick: bool = False) -> dict:
    steps = 2 if quick else 5
    paper = measure("gpu-paper", steps, with_plain=not quick)  # the oracle takes ~5 s a step here
    default = measure("cpu", steps)

    def rounded(value):
        return None if value is None else round(value, 2)

    return {
        "benchmark": "train_speed",
        "threads": torch.get_num_threads(),
        "kernels": native.kernels() is not None,
        "train_speedup_vs_reference": rounded(paper["speedup_vs_reference"]),
        "train_speedup_vs_reference_default": rounded(default["speedup_vs_reference"]),
        "train_speedup": rounded(paper["speedup_vs_plain"]),
        "train_speedup_default": rounded(default["speedup_vs_plain"]),
        "paper": paper,
        "default": default,
    }


def table(result: dict) -> list[str]:
    kernels = "fused C kernels" if result["kernels"] else "no C kernels (pure PyTorch)"
    lines = [f"Training step, tokens/s ({result['threads']} threads, {kernels}), forward + backward + clip + optimizer"]
    for key in ("paper", "default"):
        section = result[key]
        lines.append(f"  {section['preset']}: {section['model']} (load average {section['load_average']})")
        for row in section["rows"]:
            lines.append(
                f"    {row['implementation']:<26} {row['tokens_per_second']:>9.0f} tok/s"
                f"   {row['seconds_per_step'] * 1000:>8.0f} ms/step"
            )
        ratios = []
        for name in ("reference", "plain", "fallback"):
            value = section[f"speedup_vs_{name}"]
            ratios.append(f"vs {name} {value:.2f}x" if value is not None else f"vs {name}: not measured")
        lines.append(f"    fused speed-up (median of per-window ratios): {', '.join(ratios)}")
        loss = section.get("loss_difference_plain_vs_fused")
        lines.append(
            (f"    |first loss plain - fused| {loss:.1e}; " if loss is not None else "    ")
            + f"overhead of accumulate 2: {section['accumulate_overhead']:+.0%}, of FGM: {section['fgm_overhead']:+.0%}"
        )
    return lines
