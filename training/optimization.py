"""Optimisation: frozen parameters (``freeze_parameters``), the optimizer (``make_optimizer``)
and one window's forward and backward over its micro-batches, with FGM and DDP's
all-reduce on the last (``accumulate_gradients``).  The CUDA-graph version of the step is in
``step``; clipping and the update are ``Trainer.train_step``'s."""

from __future__ import annotations

import contextlib
import logging
from typing import cast

import torch
from torch.nn.parallel import DistributedDataParallel

from ..models.network.onlstm import ONLSTMLanguageModel, activation_regularization, count_parameters
from .adversarial import FGM
from .config import ConfigError, TrainConfig

logger = logging.getLogger("onlstm.training")


def freeze_parameters(model: torch.nn.Module, names: list[str]) -> None:
    """Keep the parameters named by ``names`` (a name, or a prefix ending at a dot) as they are."""
    if not names:
        return
    parameters = dict(model.named_parameters())
    for name in names:
        matched = [key for key in parameters if key == name or key.startswith(name + ".")]
        if not matched:
            prefixes = sorted({key.rsplit(".", 1)[0] for key in parameters} | set(parameters))
            raise ConfigError(f"freeze: {name!r} names no parameter of the model; use one of {', '.join(prefixes)}")
        for key in matched:
            parameters[key].requires_grad_(False)
    kept = sum(parameter.numel() for parameter in model.parameters() if not parameter.requires_grad)
    logger.info("frozen: %s (%s of %s parameters)", ", ".join(names), f"{kept:,}", f"{count_parameters(model):,}")


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(trained, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(trained, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.Adam(trained, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def accumulate_gradients(
    model: ONLSTMLanguageModel | DistributedDataParallel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    states: list,
    config: TrainConfig,
    fgm: FGM | None,
    autocast,
) -> tuple[float, list]:
    """Forward and backward one window of ``accumulate * batch_size`` streams.

    Micro-batch k holds streams ``[k*B, (k+1)*B)`` and carries its own hidden state;
    each loss is divided by ``accumulate``, so the summed gradient equals the gradient
    of the mean loss over the whole window (one large batch).  With FGM on, every
    micro-batch adds the gradient of its adversarial loss, computed from its own
    clean gradient.

    Args:
        inputs, targets: (accumulate * B, T) token ids.
        states: per micro-batch, the per-layer (h, c) to continue from.
    Returns:
        the mean clean negative log-likelihood, and the new states.
    """
    # Under DDP the forward goes through the wrapper (its hooks all-reduce the gradients);
    # token_nll and init_state live on the wrapped module.  The tied embedding and the output
    # bias get their gradient in the same backward, after forward, which is all DDP's reducer
    # needs.  Gradients are all-reduced in the last backward of the step only: no_sync before.
    ddp = isinstance(model, DistributedDataParallel)
    core = cast(ONLSTMLanguageModel, model.module) if isinstance(model, DistributedDataParallel) else model
    mean_nll = 0.0
    new_states = []
    for micro in range(config.accumulate):
        last = micro == config.accumulate - 1
        rows = slice(micro * config.batch_size, (micro + 1) * config.batch_size)
        state = [(h.detach(), c.detach()) for h, c in states[micro]]
        if fgm:
            fgm.mark()
        with _sync_gradients(model, last and not fgm), autocast:
            output = model(inputs[rows], state=state)
            nll = core.token_nll(output.hidden, targets[rows]).mean()
            loss = nll + activation_regularization(output, config.alpha, config.beta)
        (loss / config.accumulate).backward()
        new_states.append(output.state)
        mean_nll += nll.item() / config.accumulate
        if fgm:
            attacked = fgm.attack()
            # with FGM the adversarial backward is the step's last; under DDP it runs on every
            # rank (weighted 0 where this rank's gradient gave no attack) so all ranks all-reduce
            if attacked or (ddp and last):
                with _sync_gradients(model, last), autocast:
                    adversarial_output = model(inputs[rows], state=state)
                    adversarial_loss = core.token_nll(adversarial_output.hidden, targets[rows]).mean()
                (adversarial_loss * (1.0 if attacked else 0.0) / config.accumulate).backward()
                fgm.restore()
    return mean_nll, new_states


def _sync_gradients(model: torch.nn.Module, now: bool):
    """A context: DDP all-reduces the gradients of the backward after this forward only when ``now``."""
    if isinstance(model, DistributedDataParallel) and not now:
        return model.no_sync()
    return contextlib.nullcontext()
