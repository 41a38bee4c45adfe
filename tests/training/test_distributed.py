"""Distributed data parallel training on 2 CPU processes (gloo on loopback, started by torchrun).

* One process group trains several runs (``tests/training/ddp_worker.py``): with dropout off, one
  or two optimizer steps on 2 ranks give the same parameters as one process with twice
  the accumulation (the same global batch), with and without FGM.
* ``torchrun ... -m onlstm train --resume`` continues a 2-process run exactly: the losses after
  the resume equal those of the uninterrupted run (every rank's RNG and hidden state is saved).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from onlstm.models.checkpoint import load_resume
from onlstm.models.network.onlstm import ONLSTMLanguageModel
from onlstm.training.config import load_preset
from onlstm.training.train import train

REPO = Path(__file__).resolve().parents[2]
NO_DROPOUT = [
    "model.dropout_output=0",
    "model.dropout_hidden=0",
    "model.dropout_input=0",
    "model.dropout_embedding=0",
    "model.dropconnect=0",
]
DEV_TREES = """\
( (S (NP (DT the) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .)) )
( (S (NP (DT a) (JJ small) (NN dog)) (VP (VBD chased) (NP (DT the) (NN bird)))) )
( (S (NP (DT the) (NN bird)) (VP (VBD saw) (NP (DT a) (NN cat)) (PP (IN near) (NP (DT the) (NN tree))))) )
( (S (NP (DT a) (NN man)) (VP (VBD walked) (PP (IN to) (NP (DT the) (JJ old) (NN house))))) )
"""


def write_corpus(path: Path, n_sentences: int = 400) -> None:
    """A small synthetic corpus: simple clauses over a 30-word vocabulary."""
    rng = random.Random(0)
    det, adj = ["the", "a", "every"], ["small", "old", "red", "happy", ""]
    noun = ["cat", "dog", "bird", "man", "house", "tree", "garden", "mat"]
    verb, prep = ["saw", "chased", "sat", "walked", "liked"], ["on", "near", "to", "in"]

    def noun_phrase():
        return [rng.choice(det), rng.choice(adj), rng.choice(noun)]

    lines = []
    for _ in range(n_sentences):
        words = noun_phrase() + [rng.choice(verb)]
        if rng.random() < 0.6:
            words += noun_phrase()
        if rng.random() < 0.5:
            words += [rng.choice(prep)] + noun_phrase()
        lines.append(" ".join(word for word in words if word))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ddp-data")
    write_corpus(folder / "corpus.txt")
    (folder / "dev.mrg").write_text(DEV_TREES)
    return folder / "corpus.txt", folder / "dev.mrg"


def small_config(data: tuple[Path, Path], *overrides: str):
    corpus, dev = data
    return load_preset("tiny").override(
        [
            f"corpora={corpus}",
            f"dev_corpus={dev}",
            "dev_max_sentences=0",
            "model.vocab_size=100",
            "model.embedding_size=16",
            "model.hidden_size=24",
            "model.n_layers=2",
            "model.chunk_size=4",
            "batch_size=2",
            "bptt=8",
            "threads=1",
            "eval_every=0",
            "checkpoint_every=100",
            *overrides,
        ]
    )


def torchrun(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=2 ARGUMENTS`` in the repository (a free port on loopback)."""
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *arguments]
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    return completed


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def parameters(run: Path) -> dict[str, torch.Tensor]:
    return load_resume(run / "last.pt")["model"]


# the runs made by one 2-process group (name -> config), shared by the tests of this module
EQUIVALENCE = ["optimizer=sgd", "lr=1.0", "random_bptt=false", *NO_DROPOUT]
DDP_RUNS = {
    "plain": ["accumulate=2", "max_steps=2", *EQUIVALENCE],
    "fgm": ["accumulate=2", "max_steps=1", "adversarial_epsilon=0.5", *EQUIVALENCE],
    "whole": ["accumulate=2", "max_steps=6", "eval_every=3", "checkpoint_every=3"],  # dropout on, random windows
    "interrupted": ["accumulate=2", "max_steps=3", "eval_every=3", "checkpoint_every=3"],
}


@pytest.fixture(scope="module")
def ddp_runs(small_data, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ddp-runs")
    jobs = [
        {"config": small_config(small_data, *overrides).to_dict(), "out": str(folder / name)}
        for name, overrides in DDP_RUNS.items()
    ]
    (folder / "jobs.json").write_text(json.dumps(jobs))
    torchrun(str(REPO / "tests" / "training" / "ddp_worker.py"), str(folder / "jobs.json"))
    return {name: folder / name for name in DDP_RUNS}


def assert_same_parameters(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["plain", "fgm"])
def test_ddp_steps_equal_the_single_process_steps_on_the_same_global_batch(run, ddp_runs, small_data, tmp_path):
    overrides = DDP_RUNS[run]
    # one process, 2 x 2 micro-batches: the global batch of 2 ranks x 2 micro-batches
    single_config = small_config(small_data, *overrides).override(["accumulate=4"])
    train(single_config, tmp_path / "single")
    single, ddp = parameters(tmp_path / "single"), parameters(ddp_runs[run])
    assert_same_parameters(ddp, single)
    # the steps moved the weights (the comparison is not between two untrained models)
    torch.manual_seed(single_config.seed)
    initial = ONLSTMLanguageModel(
        single_config.model_for_vocabulary(len(load_resume(tmp_path / "single" / "last.pt")["vocab"]))
    )
    moved = max((single[name] - value).abs().max().item() for name, value in initial.state_dict().items())
    assert moved > 1e-3
    steps = read_jsonl(ddp_runs[run] / "steps.jsonl")
    assert [row["loss"] for row in steps] == pytest.approx(
        [row["loss"] for row in read_jsonl(tmp_path / "single" / "steps.jsonl")], rel=1e-5
    )


@pytest.mark.slow
def test_ddp_run_trains_checkpoints_and_resumes_exactly(ddp_runs, small_data, tmp_path):
    whole, interrupted = ddp_runs["whole"], ddp_runs["interrupted"]
    losses = [row["loss"] for row in read_jsonl(whole / "steps.jsonl")]
    assert len(losses) == 6  # rank 0 alone writes the logs
    assert [row["step"] for row in read_jsonl(whole / "metrics.jsonl")] == [3, 6]
    assert (whole / "best.safetensors").is_file() and (whole / "last.safetensors").is_file()
    checkpoint = load_resume(interrupted / "last.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["progress"]["step"] == 3
    assert len(checkpoint["other_ranks"]) == 1  # rank 1's hidden states and RNG
    assert not torch.equal(checkpoint["rng"]["torch"], checkpoint["other_ranks"][0]["rng"]["torch"])  # seed + rank
    assert not torch.equal(checkpoint["states"][0][0][0], checkpoint["other_ranks"][0]["states"][0][0][0])

    # a different number of processes cannot continue it
    config = small_config(small_data, "accumulate=2", "max_steps=6", "eval_every=3", "checkpoint_every=3")
    with pytest.raises(ValueError, match="same number"):
        train(config, interrupted, resume=True)

    # the command line under torchrun continues exactly where the 2-process run stopped
    command = "-m onlstm train --preset tiny --resume --max-steps 6 --set eval_every=3 --set checkpoint_every=3"
    torchrun(*command.split(), "--out", str(interrupted))
    resumed = read_jsonl(interrupted / "steps.jsonl")
    assert [row["step"] for row in resumed] == list(range(1, 7))
    assert [row["loss"] for row in resumed] == pytest.approx(losses, rel=1e-6, abs=1e-7)
    assert_same_parameters(parameters(interrupted), parameters(whole))
