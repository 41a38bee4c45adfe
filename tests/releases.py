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


def bundle(folder: Path, monkeypatch, languages: tuple[str, ...]) -> dict[str, Path]:
    """Make ``languages`` the bundled ones for this test: ``models.languages.WEIGHTS`` pointed at
    ``folder``, holding the real English release (a link) and a tiny release for each other
    language, under the file names ``LANGUAGES`` gives them.  Returns each language's file."""
    from onlstm.models import languages as registry

    real = registry.WEIGHTS / registry.LANGUAGES["en"].weights
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for language in languages:
        path = folder / registry.LANGUAGES[language].weights
        if language == "en":
            path.symlink_to(real)
        else:
            make_release(folder, language).rename(path)
        paths[language] = path
    monkeypatch.setattr(registry, "WEIGHTS", folder)
    return paths
