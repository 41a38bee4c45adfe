"""FGM adversarial training on the embedding matrix (Miyato et al. 2017).

After the clean backward pass: ``attack()`` adds ``epsilon * g / ||g||`` to the
embedding weights, where ``g`` is the gradient the *current micro-batch* put there
(so it composes with gradient accumulation), the adversarial loss is backpropagated
on top, and ``restore()`` puts the exact original weights back.
"""

from __future__ import annotations

import torch
from torch import nn


class FGM:
    """The fast gradient method (FGM): an adversarial step on one embedding matrix, ``epsilon``
    its size (``adversarial_epsilon``; see the module doc for the order of the calls)."""

    def __init__(self, embedding: nn.Embedding, epsilon: float):
        self.embedding = embedding
        self.epsilon = epsilon
        self._backup: torch.Tensor | None = None
        self._grad_before: torch.Tensor | None = None

    def mark(self) -> None:
        """Remember the embedding gradient before the micro-batch's clean backward."""
        grad = self.embedding.weight.grad
        self._grad_before = None if grad is None else grad.detach().clone()

    @torch.no_grad()
    def attack(self) -> bool:
        """Perturb the embeddings; False (and nothing changed) when the gradient is zero."""
        weight = self.embedding.weight
        if weight.grad is None:
            return False
        grad = weight.grad if self._grad_before is None else weight.grad - self._grad_before
        norm = torch.linalg.vector_norm(grad)
        if not torch.isfinite(norm) or norm == 0:
            return False
        self._backup = weight.detach().clone()
        weight.add_(grad, alpha=self.epsilon / norm.item())
        return True

    @torch.no_grad()
    def restore(self) -> None:
        if self._backup is not None:
            self.embedding.weight.copy_(self._backup)
            self._backup = None
