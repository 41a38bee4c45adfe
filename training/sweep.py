"""Run a plan of training runs side by side and tabulate them: the ablation table.

    onlstm sweep training/sweeps/ablation.json --out runs/ablation --parallel 9 --max-minutes 7
    onlstm sweep --summarize runs/ablation

A plan is a JSON file::

    {"preset": "cpu", "set": ["precision=fp32"],          # shared by every run
     "runs": [{"name": "base", "set": []},
              {"name": "fgm-0.5", "set": ["adversarial_epsilon=0.5"]},
              {"name": "wide", "set": ["model.hidden_size=1150"]}]}

Each run is one ``onlstm train`` process writing ``OUT/NAME/``, so runs share nothing but the
hardware: on a GPU that the ON-LSTM recurrence leaves mostly idle (its small per-step kernels
are launch-bound), several runs at once cost little more wall time than one.  Every run gets
the same wall-clock budget, which is what the table compares.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

logger = logging.getLogger("onlstm.training.sweep")


def load_plan(path: Path) -> dict:
    plan = json.loads(Path(path).read_text())
    names = [run["name"] for run in plan.get("runs", [])]
    if not names:
        raise ValueError(f"{path}: the plan has no runs; expected {{'runs': [{{'name': ..., 'set': [...]}}]}}")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: run names must be unique")
    for name in names:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"{path}: {name!r} cannot be a folder name")
    return plan


def run_command(plan: dict, run: dict, out_dir: Path, extra: list[str]) -> list[str]:
    """The ``onlstm train`` command line of one run: shared settings, then the run's, then ``extra``."""
    command = [sys.executable, "-m", "onlstm", "train", "--preset", run.get("preset", plan.get("preset", "cpu"))]
    command += ["--out", str(out_dir / run["name"])]
    for assignment in [*plan.get("set", []), *run.get("set", []), *extra]:
        command += ["--set", assignment]
    return command


def launch(plan: dict, out_dir: Path, parallel: int, extra: list[str], only: set[str] | None = None) -> dict[str, int]:
    """Run the plan ``parallel`` processes at a time; returns each run's exit status."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pending = [run for run in plan["runs"] if not only or run["name"] in only]
    running: dict[str, tuple[subprocess.Popen, IO[str]]] = {}
    statuses: dict[str, int] = {}
    while pending or running:
        while pending and len(running) < parallel:
            run = pending.pop(0)
            (out_dir / run["name"]).mkdir(parents=True, exist_ok=True)
            log = open(out_dir / run["name"] / "train.log", "w")  # noqa: SIM115 (closed when the run ends)
            command = run_command(plan, run, out_dir, extra)
            logger.info("start %s: %s", run["name"], " ".join(command[1:]))
            running[run["name"]] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(1.0)
        for name, (process, output) in list(running.items()):
            if process.poll() is not None:
                output.close()
                statuses[name] = process.returncode
                del running[name]
                logger.info("%s finished with status %d", name, process.returncode)
    return statuses


def summarize_run(run_dir: Path) -> dict | None:
    """Best and last dev figures of one run folder, from its ``metrics.jsonl`` and ``steps.jsonl``."""
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.exists():
        return None
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    speeds = []
    steps_path = run_dir / "steps.jsonl"
    if steps_path.exists():
        speeds = [json.loads(line)["tokens_per_second"] for line in steps_path.read_text().splitlines() if line.strip()]
    common = {
        "run": run_dir.name,
        "evaluations": len(rows),
        "steps": rows[-1]["step"],
        "best_dev_perplexity": min(row["dev_perplexity"] for row in rows),
        "median_tokens_per_second": statistics.median(speeds) if speeds else None,
    }
    if "dev_f1" not in rows[0]:  # selected on held-out perplexity (a language run): no tree was scored
        best = min(rows, key=lambda row: row["dev_perplexity"])
        return {**common, "best_dev_f1": None, "best_layer": None, "best_step": best["step"],
                "dev_f1_per_layer_at_best": [], "dev_perplexity_at_best": best["dev_perplexity"],
                "last_dev_f1": None, "mean_dev_f1_last5": None}
    best = max(rows, key=lambda row: row["dev_f1"])
    return {
        **common,
        "best_dev_f1": best["dev_f1"],
        "best_layer": best["best_layer"],
        "best_step": best["step"],
        "dev_f1_per_layer_at_best": best["dev_f1_per_layer"],
        "dev_perplexity_at_best": best["dev_perplexity"],
        "last_dev_f1": rows[-1]["dev_f1"],
        # the spread of the last evaluations: how much a single selection point can be trusted
        "mean_dev_f1_last5": statistics.fmean(row["dev_f1"] for row in rows[-5:]),
        **online_summary(rows),
        "selection_bias": selection_bias(rows),
    }


def online_summary(rows: list[dict]) -> dict:
    """With weight averaging, the same figures for the online weights of the same run."""
    if "online_dev_f1" not in rows[0]:
        return {}
    best = max(rows, key=lambda row: row["online_dev_f1"])
    return {
        "online_best_dev_f1": best["online_dev_f1"],
        "online_best_step": best["step"],
        "online_dev_perplexity_at_best": best["online_dev_perplexity"],
        "online_best_dev_perplexity": min(row["online_dev_perplexity"] for row in rows),
        "online_selection_bias": selection_bias(rows, "online_"),
    }


def selection_bias(rows: list[dict], prefix: str = "") -> dict | None:
    """How much choosing the checkpoint and layer on the scored sentences flatters the score.

    For each half of dev: its best F1 over every evaluation and layer (what a report selected on
    it gives), and its F1 at the evaluation and layer chosen on the other half (an honest
    figure).  ``{"first": {"selected_here", "selected_on_other_half", "step", "layer"},
    "second": ..., "mean_gap"}``; None when the evaluations did not score the halves apart.
    ``prefix="online_"``: the same for the online weights of a run that averages them.
    """
    rows = [row for row in rows if row.get(f"{prefix}dev_f1_per_layer_halves")]
    if not rows:
        return None
    choices = [(row, layer) for row in rows for layer in range(len(row[f"{prefix}dev_f1_per_layer"]))]

    def score(choice: tuple[dict, int], half: int) -> float:
        row, layer = choice
        return row[f"{prefix}dev_f1_per_layer_halves"][half][layer]

    result: dict = {}
    for name, half in (("first", 0), ("second", 1)):
        chosen = max(choices, key=lambda choice: score(choice, 1 - half))
        result[name] = {
            "selected_here": max(score(choice, half) for choice in choices),
            "selected_on_other_half": score(chosen, half),
            "step": chosen[0]["step"],
            "layer": chosen[1],
        }
    result["mean_gap"] = statistics.fmean(
        result[name]["selected_here"] - result[name]["selected_on_other_half"] for name in ("first", "second")
    )
    return result


def summarize(out_dir: Path) -> list[dict]:
    runs = [summarize_run(path) for path in sorted(Path(out_dir).iterdir()) if path.is_dir()]
    return [run for run in runs if run is not None]


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| run | steps | best dev F1 (layer, step) | F1 per layer at best | dev ppl at best | best dev ppl "
        "| mean F1 last 5 evals | tokens/s |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        speed = row["median_tokens_per_second"]
        best = "-" if row["best_dev_f1"] is None else f"{row['best_dev_f1']:.1f} (layer {row['best_layer']}, step " \
            f"{row['best_step']})"
        last5 = "-" if row["mean_dev_f1_last5"] is None else f"{row['mean_dev_f1_last5']:.1f}"
        lines.append(
            f"| {row['run']} | {row['steps']} | {best} | "
            f"{' / '.join(f'{value:.1f}' for value in row['dev_f1_per_layer_at_best']) or '-'} "
            f"| {row['dev_perplexity_at_best']:.1f} | {row['best_dev_perplexity']:.1f} "
            f"| {last5} | {'-' if speed is None else f'{speed:.0f}'} |"
        )
    return "\n".join(lines)


def run_sweep(plan: dict, out_dir: Path, parallel: int = 1, extra: Sequence[str] = (), only: set[str] | None = None
              ) -> dict:
    """Run the plan (see ``launch``), then tabulate every run folder of ``out_dir``; the result,
    ``{"statuses": {run: exit status}, "runs": [summary rows]}``, is also written to ``summary.json``."""
    statuses = launch(plan, Path(out_dir), max(1, parallel), list(extra), only)
    summary = {"statuses": statuses, "runs": summarize(out_dir)}
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
