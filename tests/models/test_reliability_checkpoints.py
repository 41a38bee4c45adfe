"""Model files: a broken or malicious checkpoint is refused with an error naming the file and the
problem, never executes code, and a service started on it never reports ready; a checkpoint
write killed halfway leaves the previous file intact."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from onlstm.models.checkpoint import CheckpointError, load_release, load_resume
from onlstm.models.parser import Parser

from ..helpers import REPO, ServerProcess


class Exploit:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def rewrite(source: Path, target: Path, header_change=None, tensor_change=None) -> Path:
    """A copy of a release checkpoint with its header and/or tensors changed (SHA-256 left as it was)."""
    with safe_open(str(source), framework="pt") as opened:
        header = dict(opened.metadata())
        tensors = {name: opened.get_tensor(name) for name in opened.keys()}
    if header_change:
        header_change(header)
    if tensor_change:
        tensor_change(tensors)
    save_file(tensors, str(target), metadata=header)
    return target


def broken_checkpoints(good: Path, folder: Path, marker: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, words the error must contain besides the file name)."""
    data = good.read_bytes()
    files: dict[str, tuple[Path, list[str]]] = {}

    def add(name: str, path: Path, words: list[str]) -> None:
        files[name] = (path, words)

    pickled = folder / "malicious.safetensors"
    pickled.write_bytes(pickle.dumps({"model": Exploit(marker)}))
    add("malicious pickle", pickled, ["not a readable safetensors file"])
    torch_saved = folder / "malicious.pt"
    torch.save({"format": "onlstm-release-1", "model": Exploit(marker)}, torch_saved)
    add("malicious torch.save file", torch_saved, ["not a readable safetensors file"])
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    add("truncated", truncated, ["truncated or corrupted"])
    header_cut = folder / "header-cut.safetensors"
    header_cut.write_bytes(data[:40])
    add("cut inside the header", header_cut, ["truncated or corrupted"])
    empty = folder / "empty.safetensors"
    empty.write_bytes(b"")
    add("empty file", empty, ["truncated or corrupted"])
    flipped = folder / "corrupted.safetensors"
    flipped.write_bytes(data[:-64] + bytes(byte ^ 0x55 for byte in data[-64:]))
    add("corrupted weights", flipped, ["SHA-256", "corrupted"])
    add("vocabulary that does not match the weights", rewrite(
        good, folder / "vocabulary.safetensors",
        header_change=lambda header: header.update(vocab=json.dumps(json.loads(header["vocab"])[:-2]))),
        ["vocabulary", "tokens"])
    add("no recorded checksum", rewrite(good, folder / "no-checksum.safetensors",
                                        header_change=lambda header: header.pop("sha256")), ["no SHA-256"])
    add("damaged header JSON", rewrite(good, folder / "bad-header.safetensors",
                                       header_change=lambda header: header.update(config="{not json")),
        ["damaged header"])
    add("not an ON-LSTM checkpoint", rewrite(good, folder / "other-format.safetensors",
                                             header_change=lambda header: header.update(format="llama")),
        ["not an ON-LSTM release checkpoint"])

    def enormous(header: dict) -> None:  # weights of a 200,000-unit model would need terabytes
        config = json.loads(header["config"])
        header["config"] = json.dumps({**config, "hidden_size": 200_000, "chunk_size": 4})

    add("config claiming enormous layers", rewrite(good, folder / "enormous.safetensors", header_change=enormous),
        ["do not fit the recorded config", "shape"])
    return files


@pytest.fixture(scope="module")
def broken(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    marker = folder / "exploit-ran"
    return broken_checkpoints(tiny_checkpoint, folder, marker), marker


@pytest.mark.parametrize("name", [
    "malicious pickle", "malicious torch.save file", "truncated", "cut inside the header", "empty file",
    "corrupted weights", "vocabulary that does not match the weights", "no recorded checksum", "damaged header JSON",
    "not an ON-LSTM checkpoint", "config claiming enormous layers",
])
def test_loading_a_broken_checkpoint_is_a_clear_error(broken, name):
    files, marker = broken
    path, words = files[name]
    for load in (load_release, Parser.load):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        message = str(caught.value)
        assert str(path) in message, message
        for word in words:
            assert word in message, (word, message)
        assert caught.value.code == CODES[name]
        again = pickle.loads(pickle.dumps(caught.value))  # as a worker process raises it
        assert (str(again), again.code) == (message, CODES[name])
    assert not marker.exists(), "the code in a pickle ran"


CODES = {"malicious pickle": "unreadable", "malicious torch.save file": "unreadable", "truncated": "unreadable",
         "cut inside the header": "unreadable", "empty file": "unreadable", "corrupted weights": "corrupted",
         "vocabulary that does not match the weights": "inconsistent", "no recorded checksum": "unverifiable",
         "damaged header JSON": "damaged", "not an ON-LSTM checkpoint": "not_a_release",
         "config claiming enormous layers": "inconsistent"}


def test_a_malicious_training_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "exploit-ran"
    for name, write in (("pickle.dump", lambda path: path.write_bytes(pickle.dumps({"model": Exploit(marker)}))),
                        ("torch.save", lambda path: torch.save({"format": "onlstm-resume-1",
                                                                 "model": Exploit(marker)}, path))):
        path = tmp_path / f"{name}.pt"
        write(path)
        with pytest.raises(CheckpointError, match="refused") as caught:
            load_resume(path)
        assert str(path) in str(caught.value) and caught.value.code == "refused"
        assert not marker.exists(), f"the code in a {name} file ran"


@pytest.mark.slow
def test_a_service_started_on_a_broken_checkpoint_never_becomes_ready(broken, tmp_path):
    """Each broken file in its own server, all started at once: /ready is 503 throughout, then
    names the file and the problem; /parse answers 503; /health stays 200; SIGTERM exits 0."""
    files, marker = broken
    # the start-up path is the same for every file; these four are the cases (the others are
    # checked through load_release and Parser.load above)
    chosen = ["malicious pickle", "truncated", "corrupted weights", "vocabulary that does not match the weights"]
    servers = {name: ServerProcess(files[name][0], tmp_path / f"{index}.log") for index, name in enumerate(chosen)}
    try:
        for name, server in servers.items():
            path, words = files[name]
            server.wait_answering()
            deadline = time.monotonic() + 60
            while True:
                response = httpx.get(f"{server.base}/ready", timeout=5)
                assert response.status_code == 503, (name, response.status_code, response.text)
                readiness = response.json()
                if readiness["status"] == "failed":
                    break
                assert readiness["status"] == "loading", readiness
                assert time.monotonic() < deadline, f"{name}: still loading after 60 s"
                time.sleep(0.05)
            assert path.name in readiness["error"], readiness
            for word in words:
                assert word in readiness["error"], (word, readiness)
            for _ in range(5):  # and it stays that way
                assert httpx.get(f"{server.base}/ready", timeout=5).status_code == 503
                time.sleep(0.05)
            parse = httpx.post(f"{server.base}/parse", json={"text": "The cat sat."}, timeout=10)
            assert parse.status_code == 503 and parse.json()["error"]["code"] == "model_unavailable", parse.text
            assert path.name in parse.json()["error"]["message"]
            assert "retry-after" not in parse.headers  # a broken file does not mend itself: no retry advice
            assert httpx.get(f"{server.base}/model", timeout=10).status_code == 503
            assert httpx.get(f"{server.base}/health", timeout=10).status_code == 200
            assert "cannot serve" in server.log_text() and path.name in server.log_text()
        for name, server in servers.items():
            assert server.terminate() == 0, (name, server.log_text()[-2000:])
    finally:
        for server in servers.values():
            server.kill()
    assert not marker.exists(), "the code in a pickle ran"


WRITER = """
import sys, torch
from onlstm.models.checkpoint import save_release, save_resume
from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from onlstm.models.text.vocab import Vocab
folder = sys.argv[1]
vocab = Vocab(["<eos>", "<unk>"] + [f"word{index}" for index in range(6000)])
model = ONLSTMLanguageModel(ONLSTMConfig(vocab_size=len(vocab), embedding_size=200, hidden_size=400, n_layers=3,
                                         chunk_size=10))
version = 0
while True:
    version += 1
    save_release(f"{folder}/model.safetensors", model, vocab, {"version": version}, dtype=torch.float32)
    save_resume(f"{folder}/last.pt", {"model": model.state_dict(), "progress": {"step": version}})
    print(version, flush=True)
"""


@pytest.mark.slow
def test_a_checkpoint_write_killed_midway_leaves_the_previous_file_intact(tmp_path):
    """SIGKILL a process that rewrites a 30 MB release and resume checkpoint in a loop, at several
    moments: whatever is on disk always loads completely (one version or the next, never a mix)."""
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            written = 0
            while written < 2 + attempt:  # let a few complete writes happen, then kill mid-way through another
                line = process.stdout.readline()
                assert line, process.stderr.read()
                written = int(line)
            time.sleep(0.01 + 0.03 * attempt)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        release = load_release(tmp_path / "model.safetensors")
        resume = load_resume(tmp_path / "last.pt")
        assert release.metadata["version"] >= written and resume["progress"]["step"] >= written - 1
