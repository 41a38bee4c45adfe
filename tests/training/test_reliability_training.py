"""Training faults: bad input is refused before any training; a non-finite loss or gradient skips
the step with a warning and, after ``max_bad_steps`` in a row, stops the run keeping the last good
checkpoint; a run killed with SIGKILL mid-epoch resumes to exactly the losses of an
uninterrupted run."""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from onlstm.cli.train import main
from onlstm.models.checkpoint import load_release, load_resume
from onlstm.models.network.onlstm import ONLSTMLanguageModel
from onlstm.training import trainer as trainer_module
from onlstm.training.config import load_preset
from onlstm.training.train import train
from onlstm.training.trainer import TrainingDiverged

from ..helpers import REPO

WORDS = ("the a cat dog sat ran on in mat garden stocks fell rose company said it expects earnings to "
         "trading heavy market shares price bank").split()
DEV_TREES = [
    "( (S (NP (DT the) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat))))) )",
    "( (S (NP (DT a) (NN dog)) (VP (VBD ran) (PP (IN in) (NP (DT the) (NN garden))))) )",
    "( (S (NP (NNS stocks)) (VP (VBD fell))) )",
    "( (S (NP (DT the) (NN company)) (VP (VBD said) (SBAR (S (NP (PRP it)) (VP (VBZ expects) (NP (NNS earnings))))))) )",
]


def write_corpus(folder: Path, sentences: int = 400) -> tuple[Path, Path]:
    rng = random.Random(0)
    train_file = folder / "train.txt"
    train_file.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
                                    for _ in range(sentences)) + "\n")
    dev_file = folder / "dev.mrg"
    dev_file.write_text("\n".join(DEV_TREES) + "\n")
    return train_file, dev_file


def small_config(folder: Path, *overrides: str):
    train_file, dev_file = write_corpus(folder)
    return load_preset("tiny").override([
        f"corpora={train_file}", f"dev_corpus={dev_file}", "model.vocab_size=100", "model.embedding_size=16",
        "model.hidden_size=24", "model.chunk_size=8", "batch_size=4", "bptt=10", "random_bptt=false", "threads=1", "max_steps=12",
        "eval_every=4", "checkpoint_every=4", "max_bad_steps=3", *overrides,
    ])


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def poison_training_losses(monkeypatch, bad_calls, how: str = "nan") -> None:
    """Make the training loss of the given forward passes (1-based, training mode only) non-finite.

    ``nan``: the loss is NaN.  ``gradient``: the loss stays finite but its gradient is infinite.
    """
    original = ONLSTMLanguageModel.token_nll
    calls = {"count": 0}

    class InfiniteGradient(torch.autograd.Function):
        @staticmethod
        def forward(context, value):
            return value.clone()

        @staticmethod
        def backward(context, gradient):
            return gradient * math.inf

    def poisoned(self, hidden, targets):
        nll = original(self, hidden, targets)
        if self.training:
            calls["count"] += 1
            if bad_calls(calls["count"]):
                return nll * math.nan if how == "nan" else InfiniteGradient.apply(nll)
        return nll

    monkeypatch.setattr(ONLSTMLanguageModel, "token_nll", poisoned)


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(tensor).all() for tensor in state.values() if torch.is_tensor(tensor))


def skipped_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno == logging.WARNING and "step skipped" in record.getMessage()]


@pytest.mark.slow
def test_a_few_nan_losses_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="onlstm.training")
    poison_training_losses(monkeypatch, lambda call: call in (3, 4))
    result = train(small_config(tmp_path), tmp_path / "run")
    assert result["steps"] == 12
    rows = read_rows(tmp_path / "run" / "steps.jsonl")
    assert [row["step"] for row in rows] == list(range(1, 13))
    assert all(math.isfinite(row["loss"]) for row in rows)
    warnings = skipped_warnings(caplog)
    assert len(warnings) == 2 and "1 in a row" in warnings[0] and "2 in a row" in warnings[1], warnings
    assert "non-finite loss" in warnings[0]
    checkpoint = load_resume(tmp_path / "run" / "last.pt")
    assert checkpoint["progress"]["step"] == 12 and checkpoint["progress"]["bad_steps_in_a_row"] == 0
    assert all_finite(checkpoint["model"])


def test_nan_losses_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="onlstm.training")
    run = tmp_path / "run"
    config = small_config(tmp_path)
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(config.to_dict()))
    poison_training_losses(monkeypatch, lambda call: call >= 7)  # steps 1-6 are good, then only NaN
    assert main(["--preset", str(preset), "--out", str(run)]) == 1
    assert len(skipped_warnings(caplog)) == 3  # max_bad_steps
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert any("3 non-finite losses or gradients in a row" in message and "last.pt (step 4)" in message
               and "--resume" in message for message in errors), errors
    # the checkpoints are those of step 4, the last checkpoint before the NaNs: nothing was written after
    checkpoint = load_resume(run / "last.pt")
    assert checkpoint["progress"]["step"] == 4 and all_finite(checkpoint["model"])
    for name in ("best.safetensors", "last.safetensors"):
        release = load_release(run / name)
        assert release.metadata["steps"] == 4
        assert all(torch.isfinite(parameter).all() for parameter in release.model.parameters())
    assert [row["step"] for row in read_rows(run / "steps.jsonl")] == list(range(1, 7))
    assert [row["step"] for row in read_rows(run / "metrics.jsonl")] == [4]


def test_an_infinite_gradient_behind_a_finite_loss_is_skipped_too(tmp_path, monkeypatch, caplog):
    """A finite loss whose gradient is infinite must not reach the optimizer: one such step would
    turn every weight into NaN."""
    caplog.set_level(logging.WARNING, logger="onlstm.training")
    poison_training_losses(monkeypatch, lambda call: call >= 3, how="gradient")
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(small_config(tmp_path, "max_bad_steps=2", "checkpoint_every=2", "eval_every=2"), tmp_path / "run")
    warnings = skipped_warnings(caplog)
    assert len(warnings) == 2 and "gradient norm" in warnings[0], warnings
    checkpoint = load_resume(tmp_path / "run" / "last.pt")
    assert checkpoint["progress"]["step"] == 2 and all_finite(checkpoint["model"])
    assert all(math.isfinite(row["loss"]) for row in read_rows(tmp_path / "run" / "steps.jsonl"))


def bad_inputs(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (command-line overrides, words the error must contain)."""
    train_file, dev_file = write_corpus(folder)
    empty = folder / "empty.txt"
    empty.write_text("")
    blank = folder / "blank.txt"
    blank.write_text("\n \n\t\n")
    binary = folder / "binary.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    latin1 = folder / "latin1.txt"
    latin1.write_bytes("le caf\u00e9 est ferm\u00e9\n".encode("latin-1") * 50)
    utf16 = folder / "utf16.txt"
    utf16.write_bytes("the cat sat on the mat\n".encode("utf-16") * 50)
    small = folder / "small.txt"
    small.write_text("the cat sat on the mat\n" * 8)  # 56 tokens; one batch is 4 streams x 11 tokens... x 16
    no_trees = folder / "no-trees.mrg"
    no_trees.write_text("\n")
    broken_trees = folder / "broken.mrg"
    broken_trees.write_text("( (S (NP the cat) \n")
    return {
        "empty file": ([f"corpora={empty}"], [str(empty), "no sentences"]),
        "whitespace only": ([f"corpora={blank}"], [str(blank), "no sentences"]),
        "binary file": ([f"corpora={binary}"], [str(binary), "binary", "UTF-8"]),
        "latin-1 file": ([f"corpora={latin1}"], [str(latin1), "not valid UTF-8", "iconv"]),
        "UTF-16 file": ([f"corpora={utf16}"], [str(utf16), "UTF-16", "iconv"]),
        "missing file": ([f"corpora={folder / 'nowhere.txt'}"], ["nowhere.txt"]),
        "corpus smaller than one batch": ([f"corpora={small}", "batch_size=16"],
                                          ["fewer than one batch", "56 tokens", "batch_size"]),
        "dev corpus without trees": ([f"corpora={train_file}", f"dev_corpus={no_trees}"], ["no trees"]),
        "dev corpus with broken brackets": ([f"corpora={train_file}", f"dev_corpus={broken_trees}"],
                                            [str(broken_trees), "bracketed"]),
    }


@pytest.mark.parametrize("name", [
    "empty file", "whitespace only", "binary file", "latin-1 file", "UTF-16 file", "missing file",
    "corpus smaller than one batch", "dev corpus without trees", "dev corpus with broken brackets",
])
def test_bad_training_input_is_refused_before_any_training(tmp_path, monkeypatch, caplog, name):
    overrides, words = bad_inputs(tmp_path)[name]
    _, dev_file = write_corpus(tmp_path)

    def no_model(*arguments, **keywords):
        raise AssertionError("a model was built: the bad input should have been refused before")

    monkeypatch.setattr(trainer_module, "ONLSTMLanguageModel", no_model)
    run = tmp_path / "run"
    settings = [f"dev_corpus={dev_file}", "threads=1", "batch_size=4", "bptt=10", *overrides]
    arguments = ["--preset", "tiny", "--out", str(run)] + [part for item in settings for part in ("--set", item)]
    assert main(arguments) == 2
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert not (run / "steps.jsonl").exists() and not (run / "last.pt").exists()
    assert not list(run.glob("*.safetensors"))


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    from onlstm.training.corpora import read_plain

    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfthe cat sat\n")
    assert read_plain(path) == [["the", "cat", "sat"]]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_exactly(shared_data, tmp_path):
    """The tiny preset from the command line, killed with SIGKILL after its step-8 checkpoint and
    before the epoch ends, then resumed: the losses of every step equal an uninterrupted run's."""
    overrides = [f"data_dir={shared_data}", "max_steps=20", "checkpoint_every=4", "eval_every=10",
                 "dev_max_sentences=20", "threads=1"]
    reference = tmp_path / "reference"
    train(load_preset("tiny").override(overrides), reference)
    expected = [row["loss"] for row in read_rows(reference / "steps.jsonl")]
    assert len(expected) == 20

    run = tmp_path / "killed"
    command = [sys.executable, "-m", "onlstm", "train", "--preset", "tiny", "--out", str(run)]
    command += [part for item in overrides for part in ("--set", item)]
    log = tmp_path / "killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while len(read_rows_safely(run / "steps.jsonl")) < 10:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    checkpoint = load_resume(run / "last.pt")
    step = checkpoint["progress"]["step"]
    assert 8 <= step < 20 and checkpoint["progress"]["epoch"] == 0 and checkpoint["progress"]["position"] > 0
    written = [row["step"] for row in read_rows_safely(run / "steps.jsonl")]
    assert max(written) >= step

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {run / 'last.pt'} at step {step}" in resumed.stderr
    rows = read_rows(run / "steps.jsonl")
    assert [row["step"] for row in rows] == list(range(1, 21)), "the log continues from the checkpoint's step"
    assert [row["loss"] for row in rows] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert [row["step"] for row in read_rows(run / "metrics.jsonl")] == [10, 20]


def read_rows_safely(path: Path) -> list[dict]:
    """The rows of a log that another process is appending to (a last line may be half written)."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows
