"""Checkpoints: round trips, integrity checks, and refusal of pickled code."""

import json
import os
import pickle

import pytest
import torch

from onlstm.models.checkpoint import (
    CheckpointError,
    load_release,
    load_resume,
    save_release,
    save_resume,
)

from ..helpers import make_tiny_model


def test_release_round_trip_fp32(tmp_path):
    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab, {"dev_f1": 42.0}, dtype=torch.float32)
    release = load_release(path)
    assert release.vocab.itos == vocab.itos
    assert release.metadata == {"dev_f1": 42.0}
    assert release.model.config == model.config
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(release.model.state_dict()[name], tensor, rtol=0, atol=0)


def test_release_fp16_storage_is_close(tmp_path):
    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab)
    release = load_release(path)
    ids = torch.randint(0, len(vocab), (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(release.model(ids).distances, model(ids).distances, atol=2e-3, rtol=0)


def test_missing_truncated_and_corrupted_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_release(tmp_path / "nothing.safetensors")
    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab, dtype=torch.float32)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_release(truncated)
    corrupted = tmp_path / "corrupted.safetensors"
    corrupted.write_bytes(data[:-8] + bytes(8 * [0x7F]))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_release(corrupted)


def test_vocabulary_that_does_not_match_the_weights(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab, dtype=torch.float32)
    with safe_open(str(path), framework="pt") as opened:
        header = dict(opened.metadata())
        tensors = {name: opened.get_tensor(name) for name in opened.keys()}
    header["vocab"] = json.dumps(vocab.itos[:-3])
    bad = tmp_path / "bad-vocab.safetensors"
    save_file(tensors, str(bad), metadata=header)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_release(bad)


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    path = tmp_path / "last.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "onlstm-resume-1", "model": Exploit()}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_resume(path)
    assert not marker.exists()
    # the same payload through torch.save is refused too
    torch.save({"format": "onlstm-resume-1", "model": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_resume(path)
    assert not marker.exists()


def test_resume_round_trip_plain_data(tmp_path):
    model, _ = make_tiny_model()
    optimizer = torch.optim.Adam(model.parameters())
    path = tmp_path / "last.pt"
    save_resume(
        path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": 7,
            "rng": {"torch": torch.get_rng_state()},
        },
    )
    payload = load_resume(path)
    assert payload["step"] == 7
    torch.testing.assert_close(payload["model"]["embedding.weight"], model.embedding.weight)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab, {"version": 1}, dtype=torch.float32)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_release(path, model, vocab.__class__(vocab.itos[:-1]), {"version": 2})
    assert path.read_bytes() == before
    assert [item.name for item in tmp_path.iterdir()] == ["model.safetensors"]


def test_written_checkpoints_are_readable_by_other_users_as_the_umask_allows(tmp_path):
    # a release written by training is served by another user (the container's): not private
    model, vocab = make_tiny_model()
    path = tmp_path / "model.safetensors"
    save_release(path, model, vocab, {}, dtype=torch.float32)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
