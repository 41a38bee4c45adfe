"""Checkpoint formats.  Loading never unpickles objects.

* **Release** (serving): one ``.safetensors`` file.  The tensors are the model's
  weights (fp16 or fp32); the safetensors header carries JSON strings for the model
  config, the vocabulary and the metadata (training data, steps, dev perplexity and
  F1, default layer and decoder), plus a SHA-256 of the weights that is verified on
  load.
* **Resume** (training): one ``torch.save`` file of plain data only (tensors, dicts,
  lists, numbers, strings): model and optimizer state, scheduler state, step, RNG
  states, configs, vocabulary.  It is read with ``torch.load(weights_only=True)``,
  which refuses any pickled object.

Both are written atomically (temporary file, fsync, rename), so a crash mid-write
leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from .network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from .text.vocab import Vocab

logger = logging.getLogger(__name__)

FORMAT = "onlstm-release-1"
RESUME_FORMAT = "onlstm-resume-1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem.  ``code``,
    stable for programs: ``not_found``, ``unreadable`` (not the file format, truncated),
    ``not_a_release`` / ``not_a_training_checkpoint``, ``damaged`` (its header), ``unverifiable``
    (no digest), ``corrupted`` (the weights are not those digested), ``inconsistent`` (weights,
    vocabulary and config do not fit), ``refused`` (pickled objects), ``language_mismatch``,
    ``unknown_unit`` (it reads units this version does not know)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code

    def __reduce__(self):  # picklable: worker processes raise it
        return (CheckpointError, (str(self), self.code))


@dataclass
class Release:
    """What a release checkpoint holds, ready to use."""

    model: ONLSTMLanguageModel
    vocab: Vocab
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    digest: str = ""  # SHA-256 of the weights, as recorded in the checkpoint and verified on load


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().data if tensor.numel() else b"")  # .data: its memoryview
    return digest.hexdigest()


_UMASK = os.umask(0)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would,
        # so that a server running as another user (the container's) can read what training wrote
        os.chmod(temporary, 0o666 & ~_UMASK)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save_release(
    path: Path,
    model: ONLSTMLanguageModel,
    vocab: Vocab,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write a serving checkpoint (weights in ``dtype``)."""
    if len(vocab) != model.config.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} tokens but the model expects {model.config.vocab_size}")
    state = {name: tensor.detach().to("cpu", dtype).contiguous() for name, tensor in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "vocab": json.dumps(vocab.itos, ensure_ascii=False),
        "metadata": json.dumps(metadata or {}),
        "sha256": weights_digest(state),
    }
    atomic_write(Path(path), lambda temporary: save_file(state, temporary, metadata=header))


def load_release(path: Path, device: str | torch.device = "cpu") -> Release:
    """Read a serving checkpoint; every problem is a ``CheckpointError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (train one with `onlstm train`, or check the path)", "not_found")
    try:
        with safe_open(str(path), framework="pt") as opened:
            header = opened.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupted ({error})", "unreadable") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ON-LSTM release checkpoint (format {header.get('format')!r})", "not_a_release")
    try:
        config_values, vocab_tokens = json.loads(header["config"]), json.loads(header["vocab"])
        metadata = json.loads(header.get("metadata", "{}"))
        if not isinstance(config_values, dict) or not isinstance(metadata, dict):
            raise TypeError("the config and the metadata must be JSON objects")
        if not isinstance(vocab_tokens, list) or not all(isinstance(token, str) for token in vocab_tokens):
            raise TypeError("the vocabulary must be a JSON list of strings")
        config = ONLSTMConfig.from_dict(config_values)
        # a release normalises its tokens by its own language (releases without one are English)
        vocab = Vocab(vocab_tokens, language=metadata.get("language", "en"))
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: damaged header ({type(error).__name__}: {error}); re-export the checkpoint", "damaged") from None
    if not header.get("sha256"):
        raise CheckpointError(f"{path}: no SHA-256 of the weights is recorded, so they cannot be verified; "
                              "re-export the checkpoint with save_release", "unverifiable")
    if header["sha256"] != weights_digest(state):
        raise CheckpointError(f"{path}: the weights do not match their recorded SHA-256; the file is corrupted "
                              "(copy it again, or re-export it)", "corrupted")
    if len(vocab) != config.vocab_size:
        raise CheckpointError(f"{path}: the vocabulary has {len(vocab)} tokens but the weights expect "
                              f"{config.vocab_size}; the vocabulary does not belong to these weights", "inconsistent")
    _check_shapes(path, config, state)
    # built without memory (meta device) and given the file's tensors, converted one at a time:
    # a randomly initialised copy of the weights beside the loaded ones would double the peak
    # memory of every load (measured in the service: 382 MB against 338 MB after the load)
    with torch.device("meta"), _SkipInitialisationOnMeta():
        model = ONLSTMLanguageModel(config)
    try:
        model.load_state_dict({name: state.pop(name).float() for name in list(state)}, assign=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the recorded config ({error})", "inconsistent") from None
    model.to(device).eval()
    return Release(model=model, vocab=vocab, metadata=metadata, path=path, digest=header["sha256"])


class _SkipInitialisationOnMeta(TorchFunctionMode):
    """Initialising a tensor on the ``meta`` device (no data) is a no-op here.

    Without this, ``nn.init.normal_`` on meta goes through torch's decompositions, whose first
    use imports sympy and dynamo: seconds added to every checkpoint load for nothing.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func is torch.Tensor.normal_:
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def _check_shapes(path: Path, config: ONLSTMConfig, state: dict[str, torch.Tensor]) -> None:
    """The stored tensors must be exactly those the config describes.

    Checked on a model built on the ``meta`` device (shapes only, no memory), so a config
    that claims absurd sizes is refused before anything is allocated for it.
    """
    try:
        with torch.device("meta"), _SkipInitialisationOnMeta():
            expected = {name: tuple(tensor.shape) for name, tensor in ONLSTMLanguageModel(config).state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path}: the recorded config cannot build a model ({error})", "inconsistent") from None
    problems = [f"missing tensor {name}" for name in sorted(set(expected) - set(state))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(state) - set(expected))]
    problems += [
        f"{name} has shape {tuple(state[name].shape)}, the config expects {expected[name]}"
        for name in sorted(set(expected) & set(state))
        if tuple(state[name].shape) != expected[name]
    ]
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise CheckpointError(f"{path}: the weights do not fit the recorded config: {shown}", "inconsistent")


def save_resume(path: Path, payload: dict[str, Any]) -> None:
    """Write a training checkpoint (plain data only) atomically."""
    payload = {"format": RESUME_FORMAT, **payload}
    atomic_write(Path(path), lambda temporary: torch.save(payload, temporary))


def load_resume(path: Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``: pickled objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such training checkpoint", "not_found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: the file holds pickled objects, which are never executed here ({error})", "refused"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: truncated or corrupted training checkpoint ({error})", "unreadable") from None
    if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
        raise CheckpointError(f"{path}: not an ON-LSTM training checkpoint", "not_a_training_checkpoint")
    return payload
