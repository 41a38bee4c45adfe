"""Releases of other languages for the tests, made from the tiny random model (the real zh/es/pt/nl
weights are trained apart): the same weights and vocabulary, the metadata's ``language`` changed."""

from __future__ import annotations

from pathlib import Path

import torch

from onlstm.models.checkpoint import save_release

from .helpers import make_tiny_model


def make_release(folder: Path, language: str, name: str | None = None, seed: int = 0) -> Path:
    """A tiny fp32 release of ``language`` (``None``: no ``language`` in its metadata, as before issue 25)."""
    model, vocab = make_tiny_model(seed)
    metadata = {"name": name or f"onlstm-tiny-{language or 'unmarked'}", "default_layer": 1,
                "default_decoder": "greedy", "punctuation": "attach"}
    if language is not None:
        metadata["language"] = language
    path = Path(folder) / f"tiny-{language or 'unmarked'}.safetensors"
    save_release(path, model, vocab, metadata, dtype=torch.float32)
    return path
