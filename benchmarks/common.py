"""What the benchmarks share: the default model (or a stand-in), the dev sentences, the matmul peak."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from onlstm.models.parser import DEFAULT_CHECKPOINT

logger = logging.getLogger(__name__)

STAND_IN = Path(tempfile.gettempdir()) / "onlstm-benchmarks" / "random-cpu-preset.safetensors"


def default_checkpoint() -> tuple[Path, str]:
    """The bundled default model, or (until it exists) random weights with its config.

    Speed and memory depend on the shapes, not on the values, so a random model of the
    ``cpu`` preset's size (the default model's recipe) measures the same thing.
    Returns the checkpoint and a description of it.
    """
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT, f"default model ({DEFAULT_CHECKPOINT.name})"
    if not STAND_IN.is_file():
        from onlstm.models.checkpoint import save_release
        from onlstm.models.network.onlstm import ONLSTMLanguageModel
        from onlstm.models.text.vocab import Vocab
        from onlstm.training.config import load_preset

        config = load_preset("cpu")
        sentences = [tree_tokens for tree_tokens in dev_sentences()]
        # the dev words first, then placeholders up to the preset's vocabulary size
        words = Vocab.build(sentences).itos
        vocab = Vocab(words + [f"<unused-{index}>" for index in range(max(0, config.model.vocab_size - len(words)))])
        torch.manual_seed(0)
        model = ONLSTMLanguageModel(config.model_for_vocabulary(len(vocab))).eval()
        STAND_IN.parent.mkdir(parents=True, exist_ok=True)
        save_release(STAND_IN, model, vocab, {"name": "random-cpu-preset", "default_layer": 1})
    return STAND_IN, "random weights, cpu preset config (default.safetensors not built yet)"


def dev_sentences() -> list[list[str]]:
    from onlstm.training.corpora import ptb_split_files, read_treebank, tree_tokens

    return [tree_tokens(tree) for tree in read_treebank(ptb_split_files(None, "dev"))]


def matmul_peak(seconds: float = 1.0) -> dict:
    """The best ``torch.matmul`` rate (GFLOP/s, fp32) on the current threads over a few shapes."""
    shapes = [(256, 600, 2520), (1024, 1024, 1024), (2048, 2048, 2048), (2048, 600, 2520), (4096, 200, 10000)]
    best, best_shape = 0.0, None
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out = torch.empty(m, n)
        torch.matmul(a, b, out=out)  # warm-up
        repeats, elapsed = 0, 0.0
        started = time.perf_counter()
        while elapsed < seconds / len(shapes) or repeats < 3:
            begin = time.perf_counter()
            torch.matmul(a, b, out=out)
            rate = 2 * m * k * n / (time.perf_counter() - begin) / 1e9
            if rate > best:
                best, best_shape = rate, (m, k, n)
            repeats += 1
            elapsed = time.perf_counter() - started
    return {"gflops": best, "shape": best_shape, "threads": torch.get_num_threads()}


def machine() -> str:
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{name}, {os.cpu_count()} cores, torch {torch.__version__}, load average {load:.1f} at start"


def _peak_resident_mb(pid: int, peaks: dict[int, float]) -> None:
    """Record in ``peaks`` the VmHWM (peak resident memory, MB) of ``pid`` and of its descendants."""
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[current] = max(peaks.get(current, 0.0), int(line.split()[1]) / 1024)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue


def run_measuring_memory(command: list[str], cwd: Path | None = None) -> tuple[float, int, float, str]:
    """Run ``command``; (seconds, exit status, peak resident memory in MB, the end of its stderr).

    The peak is each process's own high-water mark (VmHWM, the command's and its children's,
    summed), read every 50 ms.  Not the kernel's rusage of the child: that also counts the
    memory the parent had when it forked, and a benchmark that ran before in the parent (the
    training one) made that gigabytes.
    """
    peaks: dict[int, float] = {}
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        while process.poll() is None:
            _peak_resident_mb(process.pid, peaks)
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")[-4000:]
    return seconds, process.returncode, sum(peaks.values()), stderr
