"""Scores ``training/sweeps/results/preregistration-chinese-characters-input-gate.md``: at each run's
chosen checkpoint (lowest held-out perplexity, its choice.json), the rule under test (the input gate's
distances, layer 0, the split decoder, no prior, punctuation first) beside the 0.14.0 rule (the forget
gate, the top layer, greedy, no prior, punctuation first) at the same checkpoint and at step 1000; Sinica
dev, words only, sentence F1.

    ONLSTM_DATA=../shared/data python training/sweeps/chinese_characters_input_gate.py \\
        runs/lang/zhi-s10 runs/lang/zhi-s11 runs/lang/zhi-s12

writes ``training/sweeps/results/chinese-characters-input-gate-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import decode_spans
from onlstm.training.choice import dev_distances
from onlstm.training.evaluate import score_spans, with_punctuation_first
from onlstm.training.treebanks import read_gold

OUT = Path("training/sweeps/results/chinese-characters-input-gate-cpu.json")
RULE = ("input", 0, "split")  # gate, layer, decoder
SHIPPED = ("forget", 2, "greedy")


def f1(path: Path, golds: list, gate: str, layer: int, decoder: str) -> float:
    """Sentence F1 of one release's ``gate`` distances at ``layer``, decoded by ``decoder``, no prior,
    punctuation first."""
    distances = with_punctuation_first(dev_distances(Parser.load(path), golds, gate), golds)
    trees = [decode_spans(layers[layer], decoder, 0.0) for layers in distances]
    return score_spans(golds, trees, "words")["sentence_f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    arguments = parser.parse_args()
    golds = list(read_gold("zh", "zh-sinica", "dev"))
    rows = []
    for run in arguments.runs:
        choice = json.loads((run / "choice.json").read_text())
        chosen = run / choice["checkpoint"]
        row = {"run": str(run), "chosen_step": choice["checkpoint_step"],
               "heldout_perplexity": choice["heldout_perplexity"],
               "rule": f1(chosen, golds, *RULE),
               "shipped_rule_at_chosen": f1(chosen, golds, *SHIPPED),
               "shipped_rule_at_step1000": f1(run / "release-step1000.safetensors", golds, *SHIPPED)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = ["rule", "shipped_rule_at_chosen", "shipped_rule_at_step1000", "heldout_perplexity"]
    summary = {column: {"mean": statistics.fmean(row[column] for row in rows),
                        "spread": max(row[column] for row in rows) - min(row[column] for row in rows)}
               for column in columns}
    print(json.dumps(summary))
    arguments.out.write_text(json.dumps({"rule": dict(zip(("gate", "layer", "decoder"), RULE)),
                                         "shipped_rule": dict(zip(("gate", "layer", "decoder"), SHIPPED)), "prior": 0.0,
                                         "punctuation_first": True, "runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
