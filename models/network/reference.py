"""The test oracle: the ON-LSTM language model with the paper's equations run step by step.

Every layer runs ``models.network.cell.ONLSTMCell.step`` (equations 9-14 as the paper writes them)
once per time step, with autograd recording each operation, and the loss takes the
softmax over the whole vocabulary at once: no fused recurrence, no hand-written backward,
no slicing.  It is the yardstick of correctness, not of speed: ``tests/models/test_fast_onlstm.py``
holds every fast path to it (outputs, distances, states, losses and gradients), and
``benchmarks/train_speed.py`` runs it as the ``plain`` row.

Parameters have the same names and shapes as ``ONLSTMLanguageModel`` (``load_state_dict``
takes the same weights), and the regularisers draw their random masks in the same order, so
with the same seed both models compute the same losses and gradients.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .onlstm import ONLSTMConfig, ONLSTMLanguageModel


class ReferenceONLSTMLanguageModel(ONLSTMLanguageModel):
    """``ONLSTMLanguageModel`` whose layers all take the per-step autograd path."""

    def __init__(self, config: ONLSTMConfig):
        super().__init__(config)
        for layer in self.cells():
            layer.fused = False

    def token_nll(self, hidden: Tensor, targets: Tensor, chunk_tokens: int = 0) -> Tensor:
        """All logits at once, then the cross-entropy: (B, T) negative log-likelihoods."""
        logits = self.logits(hidden)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none").view(
            targets.shape
        )
