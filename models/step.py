"""One training step of the language model, optionally captured and replayed as a CUDA graph.

On a GPU the recurrence is bound by kernel launches, not arithmetic (README, Performance): a
step of the paper-sized model launches about 35 small kernels per time step and layer.  A CUDA
graph records the whole step once (forward, NLL + AR/TAR, backward, clipping, optimizer step,
the hidden state carried into the next window) and replays it with one launch.

A graph fixes every shape, so there is one graph per window length (training draws random
BPTT lengths: a handful of distinct values), each recorded after ``warmup_steps`` eager steps
of that length, up to ``max_graphs``; windows of any other length run eagerly.  Every call is
exactly one real optimizer step, eager or replayed.  With ``cuda_graphs=False``, or on a CPU,
the same step runs eagerly: that path is what the CPU tests check.

Two limits of the replayed step: the optimizer must be capturable (SGD, or Adam/AdamW created
with ``capturable=True``), and the dropout masks come from the graph's own random stream, so a
replayed run follows another trajectory than an eager one with the same seed (with dropout off
both compute the same losses: ``benchmarks/gpu_check.py`` checks that).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from .onlstm import ONLSTMLanguageModel, activation_regularization

logger = logging.getLogger(__name__)


class TrainStep:
    """``step(inputs, targets) -> nll`` on (B, T) token ids; the hidden state is carried between calls."""

    def __init__(
        self, model: ONLSTMLanguageModel, optimizer: torch.optim.Optimizer, batch_size: int, *, alpha: float = 2.0,
        beta: float = 1.0, clip: float = 0.25, cuda_graphs: bool = False, warmup_steps: int = 3, max_graphs: int = 16,
    ):
        self.model, self.optimizer = model, optimizer
        self.alpha, self.beta, self.clip = alpha, beta, clip
        self.parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        device = next(model.parameters()).device
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        if cuda_graphs and not self.cuda_graphs:
            logger.info("CUDA graphs need a CUDA device; the step runs eagerly on %s", device)
        self.warmup_steps, self.max_graphs = warmup_steps, max_graphs
        # the carried state lives outside every graph's memory pool: each graph reads and overwrites it
        self.state = [(h.detach().clone(), c.detach().clone()) for h, c in model.init_state(batch_size)]
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor, Tensor, Tensor]] = {}
        self.eager_steps: dict[int, int] = {}

    def step(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """One optimizer step on the window; returns the mean NLL as a 0-d tensor (no host sync)."""
        self.model.train()
        length = inputs.size(1)
        if not self.cuda_graphs:
            return self._eager(inputs, targets)
        if length in self.graphs:
            return self._replay(length, inputs, targets)
        done = self.eager_steps.get(length, 0)
        if done < self.warmup_steps or len(self.graphs) >= self.max_graphs:
            self.eager_steps[length] = done + 1
            # warm-up on a side stream, as CUDA graph capture asks (lazy allocations, library handles)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                nll = self._eager(inputs, targets)
            torch.cuda.current_stream().wait_stream(side)
            return nll
        self._capture(length, inputs, targets)
        return self._replay(length, inputs, targets)

    def _body(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Forward, loss, backward, clipping, optimizer step, state carried: what a graph records."""
        output = self.model(inputs, state=self.state)
        nll = self.model.token_nll(output.hidden, targets).mean()
        loss = nll + activation_regularization(output, self.alpha, self.beta)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
        self.optimizer.step()
        with torch.no_grad():
            for (h, c), (new_h, new_c) in zip(self.state, output.state):
                h.copy_(new_h)
                c.copy_(new_c)
        return nll.detach()

    def _eager(self, inputs: Tensor, targets: Tensor) -> Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self._body(inputs, targets)

    def _capture(self, length: int, inputs: Tensor, targets: Tensor) -> None:
        static_inputs, static_targets = inputs.clone(), targets.clone()
        graph = torch.cuda.CUDAGraph()
        # gradients set to None: the captured backward allocates them in the graph's pool and
        # each replay overwrites them, so no zeroing is recorded
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_nll = self._body(static_inputs, static_targets)
        self.graphs[length] = (graph, static_inputs, static_targets, static_nll)
        logger.info("captured a CUDA graph of the training step for windows of %d steps", length)

    def _replay(self, length: int, inputs: Tensor, targets: Tensor) -> Tensor:
        graph, static_inputs, static_targets, static_nll = self.graphs[length]
        static_inputs.copy_(inputs, non_blocking=True)
        static_targets.copy_(targets, non_blocking=True)
        graph.replay()
        return static_nll.clone()
