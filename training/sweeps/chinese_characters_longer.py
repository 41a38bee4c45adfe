"""The paired control of ``training/sweeps/results/preregistration-chinese-characters-longer.md``:
each run's top layer (no prior, punctuation first, greedy: the rule for a character reader) at every
listed step, and at the checkpoint the rule chose, on Sinica dev (words only, sentence F1), so the
runs trained for 3,000 steps are compared with themselves at 1,000.

    ONLSTM_DATA=../shared/data python training/sweeps/chinese_characters_longer.py \\
        runs/lang/zhl-s7 runs/lang/zhl-s8 runs/lang/zhl-s9 --steps 1000 2000 3000

writes ``training/sweeps/results/chinese-characters-longer-paired-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from onlstm.models.parser import Parser
from onlstm.training.choice import dev_scores
from onlstm.training.treebanks import read_gold

TOP_LAYER = 2
OUT = Path("training/sweeps/results/chinese-characters-longer-paired-cpu.json")


def top_layer_f1(path: Path, golds: list) -> float:
    """Sentence F1 of the release's top layer, no prior, punctuation first."""
    return dev_scores(Parser.load(path), golds, (0.0,), punctuation_first=True)[(TOP_LAYER, 0.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--steps", nargs="+", type=int, default=[1000, 2000, 3000])
    parser.add_argument("--out", type=Path, default=OUT)
    arguments = parser.parse_args()
    golds = list(read_gold("zh", "zh-sinica", "dev"))
    rows = []
    for run in arguments.runs:
        choice = json.loads((run / "choice.json").read_text())
        row = {"run": str(run), "chosen_step": choice["checkpoint_step"],
               "chosen": top_layer_f1(run / choice["checkpoint"], golds)}
        row.update({f"step{step}": top_layer_f1(run / f"release-step{step}.safetensors", golds)
                    for step in arguments.steps})
        rows.append(row)
        print(json.dumps(row))
    columns = ["chosen", *(f"step{step}" for step in arguments.steps)]
    summary = {column: {"mean": statistics.fmean(row[column] for row in rows),
                        "spread": max(row[column] for row in rows) - min(row[column] for row in rows)}
               for column in columns}
    print(json.dumps(summary))
    arguments.out.write_text(json.dumps({"layer": TOP_LAYER, "prior": 0.0, "punctuation_first": True,
                                         "runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
