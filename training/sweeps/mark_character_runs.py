"""Marks the pre-registered character-level Chinese runs as the character readers they are, and
chooses their defaults by the tree-free rule (run in session 20 with its no-prior case for character
readers, since withdrawn: the runs' text carried annotation fragments).

The runs (``training/sweeps/results/preregistration-chinese-characters-no-prior.md``) were trained
on Sinica ``raw.train`` cut into characters and given as tokens (``--tokens``), before ``onlstm
train --unit characters`` existed; their weights and vocabulary are a character reader's.  Each
release of a run gets ``unit: characters`` and the tokenizer it was read with in its metadata
(weights unchanged); then the tree-free choice (``training.choice.choose_without_trees``: for a
character reader, no prior) is written into ``best.safetensors`` and ``choice.json``, the choice the
run made at its end kept as ``choice-as-words.json``.

    python training/sweeps/mark_character_runs.py runs/lang/char-zh-s4 runs/lang/char-zh-s5 runs/lang/char-zh-s6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from onlstm.models.checkpoint import load_release, save_release
from onlstm.training.choice import choose_without_trees, run_heldout, run_releases, stamp_choice
from onlstm.training.config import TrainConfig

TOKENIZER = ("characters of the words (Sinica's own segmentation, cut by training/sweeps/chinese_characters.py); "
             "a run of Latin letters or digits is one unit")


def mark(path: Path, dtype: torch.dtype) -> None:
    release = load_release(path)
    metadata = {key: value for key, value in release.metadata.items() if key != "tokens"}
    metadata.update(unit="characters", tokenizer=TOKENIZER,
                    normalization="NFKC, Traditional to Simplified (OpenCC t2s), lowercase, digit runs to N")
    save_release(path, release.model, release.vocab, metadata, dtype)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("runs", nargs="+", type=Path)
    for run in arguments.parse_args().runs:
        config = TrainConfig.from_saved(json.loads((run / "config.json").read_text()))
        dtype = getattr(torch, config.release_dtype)
        paths = {release.path for release in run_releases(run)}
        paths |= {path for path in (run / "best.safetensors", run / "last.safetensors") if path.is_file()}
        for path in sorted(paths):
            mark(path, dtype)
        written = run / "choice.json"
        if written.is_file() and not (run / "choice-as-words.json").is_file():
            written.rename(run / "choice-as-words.json")
        choice = choose_without_trees(run_releases(run), run_heldout(run))
        written.write_text(json.dumps(choice, indent=1) + "\n")
        stamp_choice(run / "best.safetensors", choice, dtype)
        print(run, json.dumps({key: choice[key] for key in ("checkpoint", "layer", "right_branching_bias",
                                                             "punctuation_first", "heldout_perplexity")}))


if __name__ == "__main__":
    main()
