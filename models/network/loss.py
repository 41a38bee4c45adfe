"""The tied softmax's negative log-likelihood without a (tokens, V) log-probability tensor.

``F.cross_entropy(x @ E^T + b, y)`` writes the log-softmax of every score, a zero-filled
gradient of the same size for its backward, and reads both again: five or six passes over a
(tokens, V) matrix (90 MB for 2,240 tokens and V = 10,000).  Here the forward keeps only each
row's log-sum-exp beside the scores, and the backward turns the saved scores into
``(softmax - one_hot) * grad`` in place with one pass of the C kernel (``models.network.native``).
Without the kernels ``softmax_nll`` returns None and the caller takes ``F.cross_entropy``.

At inference ``inference_nll`` computes the same a slice of rows at a time into one score buffer
per thread, which it keeps: a fresh (rows, V) tensor per slice is a new mapping whose pages
fault in (glibc maps blocks above its threshold, 128 KiB in ``onlstm serve``), which was 22,000
page faults and a fifth of the CPU time of parsing a batch of 32 sentences.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .native import Kernels, kernels
from .recurrence import autocast_enabled, kept_buffer


class _SoftmaxNLL(torch.autograd.Function):
    """nll (N,) of targets (N,) under softmax(hidden (N, E) @ weight (V, E)^T + bias (V,))."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, fused_kernels):
        # x W^T, and the bias added by the kernel's pass: addmm(bias, ...) would first copy the
        # bias into all N rows (16 ms of a 560 ms cpu-preset step on the 2-core machine)
        logits = hidden @ weight.t()  # (N, V)
        lse = logits.new_empty(logits.size(0))
        fused_kernels.logsumexp(logits, lse, bias)
        nll = lse - logits.gather(1, targets.unsqueeze(1)).squeeze(1)
        ctx.kernels = fused_kernels
        ctx.save_for_backward(hidden, weight, logits, lse, targets)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll):
        hidden, weight, logits, lse, targets = ctx.saved_tensors
        # the saved scores become their own gradient: (softmax - one_hot) * grad, in place (a second
        # backward through this graph would be refused by autograd's version check)
        ctx.kernels.softmax_nll_backward(logits, lse, targets, grad_nll)
        d_hidden = logits @ weight if ctx.needs_input_grad[0] else None
        d_weight = logits.t() @ hidden if ctx.needs_input_grad[1] else None
        d_bias = logits.sum(0) if ctx.needs_input_grad[2] else None
        return d_hidden, d_weight, d_bias, None, None


def _loss_kernels(hidden: Tensor, weight: Tensor, bias: Tensor) -> Kernels | None:
    """The C kernels when they can compute this loss: CPU tensors of one float dtype, no autocast,
    2-D hidden; else None."""
    fused_kernels = kernels()
    if fused_kernels is None or not fused_kernels.supports(hidden, weight, bias):
        return None
    if autocast_enabled(hidden.device.type) or hidden.dim() != 2:
        return None
    return fused_kernels


def softmax_nll(hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor | None:
    """Per-row negative log-likelihood (N,) from hidden (N, E), or None where the kernels cannot run
    (no compiler, a GPU tensor, half precision, autocast) or bring nothing (no gradient wanted):
    then use ``F.cross_entropy``."""
    if not torch.is_grad_enabled() or not (hidden.requires_grad or weight.requires_grad):
        # without a backward the saving is gone, and PyTorch's multi-threaded log-softmax was
        # faster at inference: 394 against 312 sentences/s in batches of 256 (2 threads)
        return None
    fused_kernels = _loss_kernels(hidden, weight, bias)
    if fused_kernels is None or hidden.stride(-1) != 1:
        return None
    return _SoftmaxNLL.apply(hidden, weight, bias, targets, fused_kernels)


# Rows of scores at a time at inference: 64 x V floats, 2.6 MB for V = 10,000, kept per thread.
INFERENCE_SCORE_ROWS = 64


def inference_nll(hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor | None:
    """Per-row negative log-likelihood (N,) without autograd, a slice of rows at a time through a
    score buffer the thread keeps (``recurrence.kept_buffer``); None where a gradient is wanted or
    the kernels cannot run (then ``F.cross_entropy``)."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad or bias.requires_grad):
        return None
    fused_kernels = _loss_kernels(hidden, weight, bias)
    if fused_kernels is None:
        return None
    vocab_size = weight.size(0)
    buffer = kept_buffer("scores", INFERENCE_SCORE_ROWS * vocab_size, hidden).view(-1, vocab_size)
    nll = hidden.new_empty(hidden.size(0))
    weight_t = weight.t()
    # The scores stay on PyTorch's float32 product, not the AMX one of the recurrence: on AMX they
    # made parsing 2-9% faster for 9 MB more of weight tiles, and the service's memory is held to 350 MB.
    for start in range(0, hidden.size(0), INFERENCE_SCORE_ROWS):
        end = min(hidden.size(0), start + INFERENCE_SCORE_ROWS)
        scores = torch.mm(hidden[start:end], weight_t, out=buffer[: end - start])
        fused_kernels.logsumexp(scores, nll[start:end], bias)  # adds the bias to the scores in place
        nll[start:end] -= scores.gather(1, targets[start:end].unsqueeze(1)).squeeze(1)
    return nll
