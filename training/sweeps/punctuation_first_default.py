"""Scores the pre-registered test of punctuation first as the default of tree-free releases
(``training/sweeps/results/preregistration-punctuation-first-default.md``) on the twelve fresh runs that
``training/sweeps/fresh_seeds.sh`` trains (seeds 4-6 of es, pt, nl and the English recipe):

    ONLSTM_DATA=../shared/data python training/sweeps/punctuation_first_default.py

Refuses to score until all twelve fresh runs are done (the pre-registration: none is scored before all are).
Each release is scored as a user would: `onlstm eval --checkpoint R --language L --treebank T --decoder greedy
--json`, with and without --punctuation-first, taking the row of the release's own default (layer, prior).
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BATCHES = [("en", "fresh", None), ("es", "v30k", "es-cess"), ("pt", "v30k", "pt-floresta"), ("nl", "v30k", "nl-alpino")]
SEEDS = (4, 5, 6)
RUNS = Path("runs/lang")
OUT = Path("training/sweeps/results/punctuation-first-default-cpu.json")


def score(release, language, treebank, punctuation_first):
    command = [
        ".venv/bin/onlstm",
        "eval",
        "--checkpoint",
        str(release),
        "--language",
        language,
        "--decoder",
        "greedy",
        "--json",
    ] + (["--treebank", treebank] if treebank else [])
    command += ["--punctuation-first"] if punctuation_first else []
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    default, words = report["default"], report["reports"]["words"]
    row = next(
        r
        for r in words["model"]
        if r["layer"] == default["layer"]
        and r["decoder"] == "greedy"
        and abs(r["right_branching_bias"] - default["right_branching_bias"]) < 1e-9
    )
    return row["sentence_f1"], default, words["baselines"]


def done(run):
    log = RUNS / run / "train.log"
    return log.exists() and "INFO onlstm.training: done:" in log.read_text(errors="replace")


missing = [f"{tag}-{lang}-s{seed}" for lang, tag, _ in BATCHES for seed in SEEDS if not done(f"{tag}-{lang}-s{seed}")]
if missing:
    sys.exit(f"not all runs are done, none is scored: {' '.join(missing)}")

result: dict[str, Any] = {"preregistration": "preregistration-punctuation-first-default.md", "batches": {}}
for language, tag, treebank in BATCHES:
    rows: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    for seed in SEEDS:
        release = RUNS / f"{tag}-{language}-s{seed}" / "best.safetensors"
        shipped, default, baselines = score(release, language, treebank, False)
        changed, _, _ = score(release, language, treebank, True)
        rows.append(
            {
                "release": str(release),
                "seed": seed,
                "layer": default["layer"],
                "prior": default["right_branching_bias"],
                "shipped_f1": shipped,
                "changed_f1": changed,
            }
        )
        print(language, release, f"shipped {shipped:.2f} with the option {changed:.2f}", flush=True)
    trivial: dict[str, float] = {b["name"]: b["sentence_f1"] for b in baselines}
    best_name = max((n for n in trivial if not n.startswith("random")), key=lambda name: trivial[name])
    shipped = statistics.fmean(r["shipped_f1"] for r in rows)
    changed = statistics.fmean(r["changed_f1"] for r in rows)
    result["batches"][f"{language}-{tag}"] = {
        "language": language,
        "rows": rows,
        "baselines": trivial,
        "shipped_mean": shipped,
        "changed_mean": changed,
        "change": changed - shipped,
        "shipped_spread": max(r["shipped_f1"] for r in rows) - min(r["shipped_f1"] for r in rows),
        "changed_spread": max(r["changed_f1"] for r in rows) - min(r["changed_f1"] for r in rows),
        "best_trivial": best_name,
        "changed_minus_trivial": changed - trivial[best_name],
        "plus_three_met": changed - trivial[best_name] >= 3.0,
    }
changes = {name: batch["change"] for name, batch in result["batches"].items()}
criteria = {
    "1 no batch falls by more than 0.5": min(changes.values()) >= -0.5,
    "2 mean change >= +1.0": statistics.fmean(changes.values()) >= 1.0,
    "3 the English batch does not fall": changes["en-fresh"] >= 0.0,
}
result.update(
    {"mean_change": statistics.fmean(changes.values()), "criteria": criteria, "adopted": all(criteria.values())}
)
OUT.write_text(json.dumps(result, indent=1) + "\n")
for name, batch in result["batches"].items():
    print(
        f"{name}: shipped {batch['shipped_mean']:.1f} option {batch['changed_mean']:.1f} change {batch['change']:+.1f} "
        f"{batch['best_trivial']} {batch['baselines'][batch['best_trivial']]:.1f} (option - trivial "
        f"{batch['changed_minus_trivial']:+.1f}) spreads {batch['shipped_spread']:.1f}/{batch['changed_spread']:.1f}"
    )
print("criteria", criteria, "adopted" if result["adopted"] else "not adopted")
