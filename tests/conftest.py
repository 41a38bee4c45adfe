"""Shared fixtures: a tiny random-weight model saved as a release checkpoint, and the data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onlstm.models.checkpoint import save_release

from .helpers import data_dir, make_tiny_model


@pytest.fixture(scope="session")
def shared_data() -> Path:
    folder = data_dir()
    if not (folder / "ptb-sample").is_dir():
        pytest.skip(f"the shared data folder {folder} is missing (set ONLSTM_DATA)")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A release checkpoint of a tiny random model (fp32), with metadata like a trained one."""
    model, vocab = make_tiny_model()
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.safetensors"
    metadata = {
        "name": "onlstm-tiny-test",
        "default_layer": 1,
        "default_decoder": "greedy",
        "punctuation": "attach",
        "dev_perplexity": 123.4,
        "dev_f1": 40.0,
        "training_data": ["test"],
    }
    save_release(path, model, vocab, metadata, dtype=torch.float32)
    return path
