"""``python -m onlstm.training.bundle``: a run's chosen release becomes a language's bundled model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from onlstm.models.checkpoint import CheckpointError, load_release, save_release
from onlstm.models.parser import Parser
from onlstm.training.bundle import bundle_release, main

from ..releases import bundle, make_release


def _run_release(folder, language="es", seed=7):
    """A run's best.safetensors as training writes it: fp32, the run's name, the seed in its config."""
    source = load_release(make_release(folder, language))
    metadata = {**source.metadata, "name": "onlstm-language", "train_config": {"seed": seed, "language": language},
                "default_right_branching_bias": 0.4}
    run = folder / "run"
    run.mkdir()
    save_release(run / "best.safetensors", source.model, source.vocab, metadata, torch.float32)
    return run


def test_the_bundled_file_keeps_the_public_name_records_the_seed_and_stores_float16(tmp_path, monkeypatch):
    paths = bundle(tmp_path / "weights", monkeypatch, ("en", "es"))
    run = _run_release(tmp_path)
    assert main([str(run), "--language", "es"]) == 0
    written = load_release(paths["es"])
    assert written.metadata["name"] == "onlstm-tiny-es"  # the name the bundled model had
    assert written.metadata["seed"] == 7 and written.metadata["default_right_branching_bias"] == 0.4
    assert {tensor.dtype for tensor in load_file(str(paths["es"])).values()} == {torch.float16}
    source = load_release(run / "best.safetensors")
    for name, tensor in source.model.state_dict().items():  # the same weights, rounded to float16 once
        assert torch.equal(written.model.state_dict()[name], tensor.half().float())
    tree = Parser.load(language="es").parse("the cat sat").tree
    assert tree.leaves() == ["the", "cat", "sat"]


def test_a_language_with_no_model_yet_is_named_after_it_unless_a_name_is_given(tmp_path):
    run = _run_release(tmp_path, "nl", seed=2)
    assert bundle_release(run / "best.safetensors", "nl", tmp_path / "nl.safetensors")["name"] == "onlstm-nl"
    named = bundle_release(run / "best.safetensors", "nl", tmp_path / "nl.safetensors", name="onlstm-nl-mine")
    assert named["name"] == load_release(tmp_path / "nl.safetensors").metadata["name"] == "onlstm-nl-mine"


def test_a_release_of_another_language_is_refused_and_nothing_is_written(tmp_path, capsys):
    run = _run_release(tmp_path, "pt")
    target = tmp_path / "es.safetensors"
    with pytest.raises(CheckpointError, match="--language pt"):
        bundle_release(run / "best.safetensors", "es", target)
    assert not target.exists()
    assert main([str(run), "--language", "es", "--out", str(target)]) == 2
    assert "not of 'es'" in capsys.readouterr().err and not target.exists()


def test_out_may_name_a_folder_which_then_holds_the_file_under_the_bundled_name(tmp_path, capsys):
    run = _run_release(tmp_path, "pt")
    folder = tmp_path / "candidates"
    folder.mkdir()
    assert main([str(run), "--language", "pt", "--out", str(folder)]) == 0
    assert [path.name for path in folder.iterdir()] == ["pt.safetensors"]
    assert f"{folder / 'pt.safetensors'}:" in capsys.readouterr().out
    assert load_release(folder / "pt.safetensors").metadata["seed"] == 7
