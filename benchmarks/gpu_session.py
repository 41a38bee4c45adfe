"""Everything a lent GPU is for, in one call of a fixed budget (about 9 minutes on one H100).

    python -m benchmarks.gpu_session --out DIR [--budget 530] [--parallel 4]

1. the CUDA tests (``tests/training/test_cuda_graphs.py``, ``tests/models/test_step.py``, the parser on
   CUDA in ``tests/models/test_parser.py``);
2. ``python -m benchmarks.gpu_check --steps 5``: tokens/s against the reference implementation;
3. the plan ``training/sweeps/long-gpu.json`` with ``cuda_graphs`` on when the CUDA tests passed
   (off otherwise), every run stopped when the budget is spent;
4. into DIR: ``session.log`` (everything printed), ``runs.tar.gz`` (each run's config, metrics,
   steps and log, and the sweep summary) and ``candidate-*.safetensors``: for the ``--releases``
   runs with the best dev F1 at perplexity <= 200, the release of that evaluation.

The data and the reference implementation come from ``$ONLSTM_DATA`` and ``$ONLSTM_PEERS``.
No test needs this script; it exists so that a GPU lent for a few minutes is used at once.

    python -m benchmarks.gpu_session --out DIR --plan training/sweeps/languages-gpu.json --skip-check

trains the plan's languages instead (runs that set ``language=``, selected on held-out
perplexity, no dev F1 during training).  After the sweep, each language's runs are scored by
``python -m onlstm.training.choice`` against ``$ONLSTM_DATA/multilingual/<treebank>`` (the
report goes into ``runs.tar.gz`` as ``languages-LANG.json``), and the lowest-perplexity run's
``best.safetensors`` of each language comes back as ``bundle-LANG-RUN.safetensors``, what
``python -m onlstm.training.bundle`` would ship.  What comes back from a lent machine is limited
(8 files of at most 16 MiB): a 3 x 600 release in float16 is 14.7 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "training" / "sweeps" / "long-gpu.json"
CUDA_TESTS = ["tests/training/test_cuda_graphs.py", "tests/models/test_step.py"]
# needs the bundled English weights, which a checkout sent without them (to fit the 64 MiB the
# device tool carries) does not have
BUNDLED_CUDA_TEST = "tests/models/test_parser.py::test_the_bundled_model_parses_on_a_gpu_as_on_the_cpu"
TREEBANKS = {"zh": "zh-sinica", "es": "es-cess", "pt": "pt-floresta", "nl": "nl-alpino"}
RETURNED_FILE_BYTES = 16 * 2**20  # the largest file a lent machine sends back
PERPLEXITY_LIMIT = 200.0  # issue 16: the shipped model's dev perplexity


class Session:
    def __init__(self, out: Path, budget: float):
        self.out, self.deadline, self.started = out, time.monotonic() + budget, time.monotonic()
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "session.log", "a")  # noqa: SIM115 (open for the whole session)

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, command: list[str], limit: float) -> int:
        """Run ``command`` with its output in the log, for at most ``limit`` seconds; its exit status (124: killed)."""
        self.log("$ " + " ".join(command))
        try:
            finished = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      timeout=max(limit, 1.0))
            output, status = finished.stdout, finished.returncode
        except subprocess.TimeoutExpired as error:  # its output arrives as bytes whatever text= said
            output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else error.stdout or ""
            status = 124
        except FileNotFoundError as error:
            output, status = str(error), 127
        self.log_file.write(output[-20000:].rstrip() + "\n")
        print(output[-4000:], flush=True)
        self.log(f"exit status {status}")
        return status


def pick_candidates(runs_dir: Path, count: int, perplexity_limit: float) -> list[tuple[str, dict]]:
    """Per run, its evaluation with the best dev F1 among those with perplexity <= the limit; the best ``count`` runs."""
    best: list[tuple[str, dict]] = []
    for metrics in sorted(runs_dir.glob("*/metrics.jsonl")):
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        eligible = [row for row in rows if "dev_f1" in row and row["dev_perplexity"] <= perplexity_limit]
        if eligible:
            best.append((metrics.parent.name, max(eligible, key=lambda row: row["dev_f1"])))
    return sorted(best, key=lambda pair: -pair[1]["dev_f1"])[:count]


def plan_languages(plan: dict) -> dict[str, list[str]]:
    """``{language: [run names]}`` of the plan's runs that set ``language=`` (shared or their own)."""
    groups: dict[str, list[str]] = {}
    for run in plan["runs"]:
        settings = dict(item.split("=", 1) for item in [*plan.get("set", []), *run.get("set", [])] if "=" in item)
        if settings.get("language", "en") != "en":
            groups.setdefault(settings["language"], []).append(run["name"])
    return groups


def lowest_perplexity_run(runs_dir: Path, names: list[str]) -> str | None:
    """Of ``names``, the run whose ``choice.json`` (written at the end of training) has the lowest held-out perplexity."""
    scored = []
    for name in names:
        choice = runs_dir / name / "choice.json"
        if choice.is_file() and (runs_dir / name / "best.safetensors").is_file():
            scored.append((json.loads(choice.read_text())["heldout_perplexity"], name))
    return min(scored)[1] if scored else None


def score_languages(session: Session, runs_dir: Path, groups: dict[str, list[str]], data: Path) -> None:
    """Each language's runs scored on its dev trees (``onlstm.training.choice``), and its bundle candidate copied out."""
    for language, names in groups.items():
        finished = [name for name in names if (runs_dir / name / "choice.json").is_file()]
        if finished:
            session.run([sys.executable, "-m", "onlstm.training.choice", *(str(runs_dir / name) for name in finished),
                         "--language", language, "--treebank", str(data / "multilingual" / TREEBANKS[language]),
                         "--json", str(runs_dir / f"languages-{language}.json")], max(session.left() - 10, 1.0))
        best = lowest_perplexity_run(runs_dir, names)
        if best and (runs_dir / best / "best.safetensors").stat().st_size <= RETURNED_FILE_BYTES:
            shutil.copy(runs_dir / best / "best.safetensors", session.out / f"bundle-{language}-{best}.safetensors")
            session.log(f"bundle candidate for {language}: {best}")
        elif best:  # a model larger than 3 x 600: its figures come back, not its weights
            session.log(f"bundle candidate for {language}: {best}, too large to bring back (its report is in runs.tar.gz)")


def collect(session: Session, runs_dir: Path, releases: int, perplexity_limit: float) -> None:
    with tarfile.open(session.out / "runs.tar.gz", "w:gz") as archive:
        for path in sorted(runs_dir.rglob("*")):
            if path.is_file() and path.suffix in {".json", ".jsonl", ".log"}:
                archive.add(path, arcname=str(path.relative_to(runs_dir.parent)))
    for run, row in pick_candidates(runs_dir, releases, perplexity_limit):
        source = runs_dir / run / f"release-step{row['step']}.safetensors"
        if source.exists():
            shutil.copy(source, session.out / f"candidate-{run}-step{row['step']}.safetensors")
            session.log(f"candidate {run} step {row['step']}: dev F1 {row['dev_f1']:.2f}, "
                        f"perplexity {row['dev_perplexity']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_session", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the session's files go")
    parser.add_argument("--budget", type=float, default=530.0, help="seconds for the whole session (default 530)")
    parser.add_argument("--parallel", type=int, default=4, help="training runs side by side (default 4)")
    parser.add_argument("--releases", type=int, default=4, help="candidate releases brought back (default 4)")
    parser.add_argument("--perplexity-limit", type=float, default=PERPLEXITY_LIMIT,
                        help="candidates come from evaluations with a dev perplexity at most this (default 200)")
    parser.add_argument("--plan", type=Path, default=PLAN, help="the training plan (default training/sweeps/long-gpu.json)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "gpu-session", help="the runs' folder")
    parser.add_argument("--skip-check", action="store_true", help="leave out gpu_check (it needs $ONLSTM_PEERS)")
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    languages = plan_languages(plan)
    session = Session(args.out, args.budget)
    session.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"], 30)
    python = sys.executable
    bundled = (REPO / "models" / "weights" / "default.safetensors").is_file()
    tests = session.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS,
                         *([BUNDLED_CUDA_TEST] if bundled else [])], 150)
    cuda_graphs = "true" if tests == 0 else "false"
    session.log(f"CUDA tests {'passed' if tests == 0 else 'FAILED'}: training runs with cuda_graphs={cuda_graphs}")
    if not args.skip_check:
        session.run([python, "-m", "benchmarks.gpu_check", "--steps", "5"], min(150.0, session.left() - 240))
    # the runs spend about 40 s reading their text before the clock of max_minutes starts, and
    # the collection needs a few seconds at the end; a language's runs also choose their layer
    # and prior at the end, then are scored on dev trees
    minutes = max(0.5, (session.left() - (150 if languages else 75)) / 60)
    session.run([python, "-m", "onlstm", "sweep", str(args.plan), "--out", str(args.runs), "--parallel", str(args.parallel),
                 "--max-minutes", f"{minutes:.2f}", "--set", f"cuda_graphs={cuda_graphs}"], session.left() - 15)
    if languages:
        data = Path(os.environ.get("ONLSTM_DATA") or REPO.parent / "shared" / "data")
        score_languages(session, args.runs, languages, data)
    collect(session, args.runs, 0 if languages else args.releases, args.perplexity_limit)
    session.log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
