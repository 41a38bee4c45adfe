"""Scores the pre-registered character-level Chinese model
(``training/sweeps/results/preregistration-chinese-characters.md``): each word's distance is the
model's distance at its first character, decoded by the shipped tree-free rule, scored on Sinica dev.

    ONLSTM_DATA=../shared/data python training/sweeps/chinese_characters.py runs/lang/char-zh-s1 \\
        runs/lang/char-zh-s2 runs/lang/char-zh-s3 --chars runs/explore/zhchar/chars.txt

``--chars`` is the training file (Sinica ``raw.train`` cut into characters by ``characters``);
writes ``training/sweeps/results/chinese-characters-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

from onlstm.models.parser import Parser
from onlstm.models.text.vocab import is_punctuation
from onlstm.models.trees.decoders import decode_spans
from onlstm.training.choice import ORACLE_STRENGTHS, PRIOR_STRENGTH, lean, run_heldout
from onlstm.training.config import TrainConfig
from onlstm.training.evaluate import evaluate_baselines, score_spans
from onlstm.training.inputs import hold_out
from onlstm.training.treebanks import read_gold

UNIT = re.compile(r"[A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+|\S")
LAYER = 1  # the shipped rule's layer
OUT = Path("training/sweeps/results/chinese-characters-cpu.json")


def characters(word: str) -> list[str]:
    """A word's characters; a run of Latin letters or digits stays one unit."""
    return UNIT.findall(word)


def read_units(word: str) -> list[str]:
    """What the model reads of a word: its characters, less punctuation (the training text had none),
    unless the word is nothing else."""
    return [unit for unit in characters(word) if not is_punctuation(unit)] or characters(word)


def word_distances(parser: Parser, sentences: list[list[str]]) -> list[list[list[float]]]:
    """``[sentence][layer][word]``: each word's distance is the distance at its first character."""
    units = [[unit for word in words for unit in read_units(word)] for words in sentences]
    read = parser.layer_distances(units, 64, "model")
    result = []
    for words, layers in zip(sentences, read):
        starts, position = [], 0
        for word in words:
            starts.append(position)
            position += len(read_units(word))
        result.append([[layer[start] for start in starts] for layer in layers])
    return result


def heldout_words(run: Path) -> list[list[str]]:
    """The run's held-out clauses as words: raw.train read as the run read it (punctuation removed
    character by character), held out by the run's own rule."""
    config = TrainConfig.from_saved(json.loads((run / "config.json").read_text()))
    raw = Path(os.environ.get("ONLSTM_DATA", "../shared/data")) / "multilingual/zh-sinica/raw.train"
    sentences = []
    for line in raw.read_text(encoding="utf-8").splitlines():
        words = [word for word in line.split()[1:] if any(not is_punctuation(unit) for unit in characters(word))]
        if words:
            sentences.append(words)
    heldout = hold_out(config, sentences)[1]
    as_read = run_heldout(run)  # the run's own held-out clauses, a character at a time
    assert [[unit for word in words for unit in read_units(word)] for words in heldout] == as_read, run
    return heldout


def score_run(run: Path, golds: list) -> dict[str, Any]:
    parser = Parser.load(run / "best.safetensors")
    heldout = heldout_words(run)
    layer_trees = [decode_spans(layers[LAYER], "greedy", 0.0) for layers in word_distances(parser, heldout)]
    run_lean = lean(layer_trees, [len(words) for words in heldout])
    strength = PRIOR_STRENGTH if run_lean >= 0 else -PRIOR_STRENGTH
    dev = word_distances(parser, [list(gold.words) for gold in golds])

    def f1(layer: int, bias: float) -> float:
        return score_spans(golds, [decode_spans(layers[layer], "greedy", bias) for layers in dev], "words")[
            "sentence_f1"
        ]

    oracle = max((f1(layer, bias), layer, bias) for layer in range(len(dev[0])) for bias in ORACLE_STRENGTHS)
    return {
        "run": str(run),
        "heldout_perplexity": parser.metadata.get("dev_perplexity"),
        "heldout_sentences": len(heldout),
        "lean_layer_1": run_lean,
        "prior": strength,
        "tree_free_f1": f1(LAYER, strength),
        "model_alone_f1": f1(LAYER, 0.0),
        "oracle_f1": oracle[0],
        "oracle": {"layer": oracle[1], "right_branching_bias": oracle[2]},
    }


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("runs", nargs=3, type=Path)
    arguments.add_argument("--chars", type=Path, required=True)
    args = arguments.parse_args()
    golds = list(
        read_gold("zh", str(Path(os.environ.get("ONLSTM_DATA", "../shared/data")) / "multilingual/zh-sinica"), "dev")
    )
    rows = [score_run(run, golds) for run in args.runs]
    for row in rows:
        print(json.dumps(row), flush=True)
    values = [row["tree_free_f1"] for row in rows]
    mean = statistics.fmean(values)
    baselines = {row["name"]: row["sentence_f1"] for row in evaluate_baselines(golds, "words")}
    criteria = {"1 mean >= 24.8": mean >= 24.8, "2 every seed > 22.8": all(value > 22.8 for value in values)}
    result = {
        "preregistration": "preregistration-chinese-characters.md",
        "rows": rows,
        "mean": mean,
        "spread": max(values) - min(values),
        "model_alone_mean": statistics.fmean(r["model_alone_f1"] for r in rows),
        "oracle_mean": statistics.fmean(r["oracle_f1"] for r in rows),
        "baselines": baselines,
        "criteria": criteria,
        "adopted": all(criteria.values()),
        "plus_three_over_balanced": mean - baselines["balanced"] >= 3.0,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"mean {mean:.1f} (spread {result['spread']:.1f}); balanced {baselines['balanced']:.1f}; criteria {criteria}")


if __name__ == "__main__":
    main()
