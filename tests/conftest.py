"""Shared fixtures: a tiny random-weight model saved as a release checkpoint, and the data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models.checkpoint import save_release
from models.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from models.vocab import Vocab

REPO = Path(__file__).resolve().parents[1]
TINY_TEXT = [
    "the cat sat on the mat".split(),
    "a dog chased the cat into the garden".split(),
    "stocks fell N % in heavy trading on wall street".split(),
    "the company said it expects earnings to rise".split(),
]


def data_dir() -> Path:
    return Path(os.environ.get("ONLSTM_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    folder = data_dir()
    if not (folder / "ptb-sample").is_dir():
        pytest.skip(f"the shared data folder {folder} is missing (set ONLSTM_DATA)")
    return folder


def make_tiny_model(seed: int = 0) -> tuple[ONLSTMLanguageModel, Vocab]:
    torch.manual_seed(seed)
    vocab = Vocab.build(TINY_TEXT)
    config = ONLSTMConfig(
        vocab_size=len(vocab),
        embedding_size=16,
        hidden_size=24,
        n_layers=3,
        chunk_size=4,
        dropout_output=0.0,
        dropout_hidden=0.0,
        dropout_input=0.0,
        dropout_embedding=0.0,
        dropconnect=0.0,
    )
    return ONLSTMLanguageModel(config).eval(), vocab


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
