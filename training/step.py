"""One training step of the language model, optionally captured and replayed as a CUDA graph.

On a GPU the recurrence is bound by kernel launches, not arithmetic (benchmarks/README.md, "What makes it fast"): a
step of the paper-sized model launches about 35 small kernels per time step and layer.  A CUDA
graph records the step once (forward, NLL + AR/TAR, backward, clipping, and with an optimizer
the optimizer step; the hidden state carried into the next window) and replays it with one launch.

Two uses:

* ``TrainStep(model, optimizer, ...)``: the whole step, optimizer included (the optimizer must
  be capturable: SGD, or Adam/AdamW made with ``capturable=True``); what ``benchmarks/gpu_check.py``
  times against the reference implementation.
* ``TrainStep(model, None, ...)``: forward, backward and clipping only.  The gradients are left
  in ``parameter.grad`` and the caller steps its own optimizer, so everything that needs the
  host between two windows (the per-window learning rate, skipping a step whose loss or
  gradient is not finite, the plateau schedule, the weight average) stays as it is: this is
  what ``onlstm train`` replays on a GPU (``cuda_graphs``, on by default).

A graph fixes every shape, so there is one graph per window length (training draws random
BPTT lengths: a few dozen distinct values), each recorded after ``warmup_steps`` eager steps
of that length, up to ``max_graphs``; windows of any other length run eagerly.  The graphs cost
little memory each: they share one memory pool (they never run at the same time, and what one
leaves for the caller, its loss and norm, stays allocated), and every graph and every eager
step writes the gradients into the same tensors, allocated once outside the pool.
With ``cuda_graphs=False``, or on a CPU, the same step runs eagerly: that path is what the CPU
tests check.  The dropout masks of a replay come from the graph's own random stream, so a
replayed run follows another trajectory than an eager one with the same seed (with dropout
off both compute the same losses: the CUDA tests and ``benchmarks/gpu_check.py`` check that).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..models.network.onlstm import ONLSTMLanguageModel, activation_regularization

logger = logging.getLogger(__name__)


@dataclass
class _Graph:
    """One captured step: its graph, the static tensors it reads and writes."""

    graph: torch.cuda.CUDAGraph
    inputs: Tensor
    targets: Tensor
    nll: Tensor
    gradient_norm: Tensor


class TrainStep:
    """``step(inputs, targets) -> (nll, gradient_norm)`` on (B, T) token ids, both 0-d tensors
    (no host sync); the hidden state (``self.state``, per layer (h, c) of (B, H)) is carried
    between calls and can be reset in place with ``reset_state``."""

    def __init__(
        self, model: ONLSTMLanguageModel, optimizer: torch.optim.Optimizer | None, batch_size: int, *,
        alpha: float = 2.0, beta: float = 1.0, clip: float = 0.25, cuda_graphs: bool = False,
        autocast_dtype: torch.dtype | None = None, warmup_steps: int = 3, max_graphs: int = 16,
    ):
        self.model, self.optimizer = model, optimizer
        self.alpha, self.beta, self.clip = alpha, beta, clip
        self.autocast_dtype = autocast_dtype
        self.parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        # backward accumulates into these (zeroed at the start of each step, inside the graphs too)
        self.gradients = [torch.zeros_like(parameter) for parameter in self.parameters]
        self.device = next(model.parameters()).device
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        if cuda_graphs and not self.cuda_graphs:
            logger.info("CUDA graphs need a CUDA device; the step runs eagerly on %s", self.device)
        self.warmup_steps, self.max_graphs = warmup_steps, max_graphs
        # the carried state lives outside every graph's memory pool: each graph reads and overwrites it
        self.state = [(h.detach().clone(), c.detach().clone()) for h, c in model.init_state(batch_size)]
        self.graphs: dict[int, _Graph] = {}
        self.eager_steps: dict[int, int] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None

    def reset_state(self, state: list[tuple[Tensor, Tensor]] | None = None) -> None:
        """Zero the carried state, or copy ``state`` into it (in place: the graphs keep reading it)."""
        with torch.no_grad():
            for index, (h, c) in enumerate(self.state):
                if state is None:
                    h.zero_()
                    c.zero_()
                else:
                    h.copy_(state[index][0])
                    c.copy_(state[index][1])

    def step(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """One step on the window; returns the mean NLL and the gradient norm before clipping."""
        self.model.train()
        length = inputs.size(1)
        if not self.cuda_graphs:
            return self._body(inputs, targets)
        if length in self.graphs:
            return self._replay(self.graphs[length], inputs, targets)
        done = self.eager_steps.get(length, 0)
        if done < self.warmup_steps or len(self.graphs) >= self.max_graphs:
            self.eager_steps[length] = done + 1
            # warm-up on a side stream, as CUDA graph capture asks (lazy allocations, library handles)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                result = self._body(inputs, targets)
            torch.cuda.current_stream().wait_stream(side)
            return result
        return self._replay(self._capture(length, inputs, targets), inputs, targets)

    def _body(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Forward, loss, backward, clipping (and the optimizer step), state carried: what a graph records."""
        self._expose_gradients()
        torch._foreach_zero_(self.gradients)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None, cache_enabled=False):
            output = self.model(inputs, state=self.state)
            nll = self.model.token_nll(output.hidden, targets).mean()
            loss = nll + activation_regularization(output, self.alpha, self.beta)
        loss.backward()
        # the norm is measured on every step (clip 0 clips at infinity): the caller skips a
        # step whose gradient is not finite
        gradient_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.clip or math.inf)
        if self.optimizer is not None:
            self.optimizer.step()
        with torch.no_grad():
            for (h, c), (new_h, new_c) in zip(self.state, output.state):
                h.copy_(new_h)
                c.copy_(new_c)
        return nll.detach(), gradient_norm

    def _expose_gradients(self) -> None:
        """Point every ``parameter.grad`` at the shared gradient tensors (a caller's
        ``zero_grad(set_to_none=True)`` may have dropped them)."""
        for parameter, gradient in zip(self.parameters, self.gradients):
            if parameter.grad is not gradient:
                parameter.grad = gradient

    def _capture(self, length: int, inputs: Tensor, targets: Tensor) -> _Graph:
        static_inputs, static_targets = inputs.clone(), targets.clone()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_nll, static_norm = self._body(static_inputs, static_targets)
        self.graphs[length] = _Graph(graph, static_inputs, static_targets, static_nll, static_norm)
        # the first at INFO, the others (a few dozen window lengths) at DEBUG
        logger.log(logging.INFO if len(self.graphs) == 1 else logging.DEBUG,
                   "captured a CUDA graph of the training step for windows of %d steps (%d graphs)", length,
                   len(self.graphs))
        return self.graphs[length]

    def _replay(self, captured: _Graph, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        captured.inputs.copy_(inputs, non_blocking=True)
        captured.targets.copy_(targets, non_blocking=True)
        self._expose_gradients()
        captured.graph.replay()
        return captured.nll.clone(), captured.gradient_norm.clone()
