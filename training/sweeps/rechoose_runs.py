"""Writes the tree-free rule of this checkout into finished runs: each run's choice is made again
(``training.choice.choose_without_trees`` on its held-out sentences, no tree read), written to its
``choice.json`` and stamped into its ``best.safetensors`` (weights unchanged); the choice the run made
when it ended is kept as ``choice-rule-of-the-time.json``.  For runs trained before the rule they are
bundled under was adopted (0.15.0: the Chinese character readers of
``training/sweeps/results/preregistration-chinese-characters-input-gate.md``, trained by the code of
0.14.0, whose rule took the forget gate's top layer).

    python training/sweeps/rechoose_runs.py runs/lang/zhi-s10 runs/lang/zhi-s11 runs/lang/zhi-s12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from onlstm.models.checkpoint import load_release
from onlstm.training.choice import choose_without_trees, run_heldout, run_releases, stamp_choice
from onlstm.training.config import TrainConfig


def rechoose(run: Path) -> dict:
    """The rule's choice for ``run``, written into it."""
    config = TrainConfig.from_saved(json.loads((run / "config.json").read_text()))
    written, kept = run / "choice.json", run / "choice-rule-of-the-time.json"
    if written.is_file() and not kept.is_file():
        written.rename(kept)
    choice = choose_without_trees(run_releases(run), run_heldout(run))
    best_step = int(load_release(run / "best.safetensors").metadata["steps"])
    if best_step != choice["checkpoint_step"]:  # both are the lowest held-out perplexity: they cannot differ
        raise ValueError(f"{run}: best.safetensors is step {best_step}, the choice step {choice['checkpoint_step']}")
    stamp_choice(run / "best.safetensors", choice, getattr(torch, config.release_dtype))
    written.write_text(json.dumps(choice, indent=1) + "\n")
    return choice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        choice = rechoose(run)
        print(run, json.dumps({key: choice.get(key) for key in ("checkpoint", "gate", "layer", "decoder",
                                                                 "right_branching_bias", "punctuation_first",
                                                                 "heldout_perplexity")}))


if __name__ == "__main__":
    main()
