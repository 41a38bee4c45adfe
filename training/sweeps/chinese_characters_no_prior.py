"""Scores the pre-registered character-level Chinese model decoded without a prior
(``training/sweeps/results/preregistration-chinese-characters-no-prior.md``): each word's distance is
the model's distance at its first character (``chinese_characters.word_distances``); the rule under
test is layer 1, greedy, no prior, punctuation first, on Sinica dev.

    ONLSTM_DATA=../shared/data python training/sweeps/chinese_characters_no_prior.py \\
        runs/lang/char-zh-s4 runs/lang/char-zh-s5 runs/lang/char-zh-s6

writes ``training/sweeps/results/chinese-characters-no-prior-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import decode_spans
from onlstm.training.choice import ORACLE_STRENGTHS, PRIOR_STRENGTH, lean
from onlstm.training.evaluate import evaluate_baselines, score_spans, with_punctuation_first
from onlstm.training.treebanks import read_gold

try:  # run as a script from the repository root, or imported as a module
    from chinese_characters import heldout_words, word_distances  # type: ignore[import-not-found]
except ImportError:
    from training.sweeps.chinese_characters import heldout_words, word_distances

LAYER = 1
OUT = Path("training/sweeps/results/chinese-characters-no-prior-cpu.json")


def score_run(run: Path, golds: list) -> dict[str, Any]:
    parser = Parser.load(run / "best.safetensors")
    heldout = heldout_words(run)
    heldout_trees = [decode_spans(layers[LAYER], "greedy", 0.0) for layers in word_distances(parser, heldout)]
    run_lean = lean(heldout_trees, [len(words) for words in heldout])
    signed = PRIOR_STRENGTH if run_lean >= 0 else -PRIOR_STRENGTH
    plain = word_distances(parser, [list(gold.words) for gold in golds])
    first = with_punctuation_first(plain, golds)

    def f1(distances: list, layer: int, bias: float) -> float:
        trees = [decode_spans(layers[layer], "greedy", bias) for layers in distances]
        return score_spans(golds, trees, "words")["sentence_f1"]

    oracle = max((f1(first, layer, bias), layer, bias) for layer in range(len(first[0])) for bias in ORACLE_STRENGTHS)
    return {
        "run": str(run),
        "heldout_perplexity": parser.metadata.get("dev_perplexity"),
        "heldout_sentences": len(heldout),
        "lean_layer_1": run_lean,
        "rule_f1": f1(first, LAYER, 0.0),
        "without_punctuation_first_f1": f1(plain, LAYER, 0.0),
        "session_18_rule_f1": f1(plain, LAYER, signed),
        "session_18_rule_with_punctuation_first_f1": f1(first, LAYER, signed),
        "oracle_f1": oracle[0],
        "oracle": {"layer": oracle[1], "right_branching_bias": oracle[2], "punctuation_first": True},
    }


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("runs", nargs=3, type=Path)
    arguments.add_argument("--out", type=Path, default=OUT, help=f"the JSON written (default {OUT})")
    args = arguments.parse_args()
    data = Path(os.environ.get("ONLSTM_DATA", "../shared/data"))
    golds = list(read_gold("zh", str(data / "multilingual/zh-sinica"), "dev"))
    rows = [score_run(run, golds) for run in args.runs]
    for row in rows:
        print(json.dumps(row), flush=True)
    values = [row["rule_f1"] for row in rows]
    mean = statistics.fmean(values)
    baselines = {row["name"]: row["sentence_f1"] for row in evaluate_baselines(golds, "words")}
    criteria = {"1 mean >= 24.8": mean >= 24.8, "2 every seed > 22.8": all(value > 22.8 for value in values)}

    def mean_of(key: str) -> float:
        return statistics.fmean(row[key] for row in rows)

    result = {
        "preregistration": "preregistration-chinese-characters-no-prior.md",
        "rows": rows,
        "mean": mean,
        "spread": max(values) - min(values),
        "means": {key: mean_of(key) for key in ("without_punctuation_first_f1", "session_18_rule_f1",
                                                 "session_18_rule_with_punctuation_first_f1", "oracle_f1",
                                                 "heldout_perplexity")},
        "baselines": baselines,
        "criteria": criteria,
        "adopted": all(criteria.values()),
        "over_balanced": mean - baselines["balanced"],
        "plus_three_over_balanced": mean - baselines["balanced"] >= 3.0,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"mean {mean:.1f} (spread {result['spread']:.1f}); balanced {baselines['balanced']:.1f}; criteria {criteria}")


if __name__ == "__main__":
    main()
