"""Once the tree-free rule includes punctuation first (``training.choice``), the bundled releases
whose choices it made (es, pt, nl, zh; not English, whose prior was chosen on dev trees) get it in
their stamped choice and defaults; their weights and every other choice stay as they are.

    python training/sweeps/restamp_punctuation_first.py es pt nl zh

then write each card again (``python -m onlstm.training.cards``) from the language's report
(``python -m onlstm.training.choice``), which fills the same rule into choices made before it.
"""

from __future__ import annotations

import sys

import torch

from onlstm.models import languages
from onlstm.models.checkpoint import load_release, save_release
from onlstm.models.parser import Parser
from onlstm.training.choice import RULE, reads_words_only


def restamp(language: str) -> None:
    path = languages.WEIGHTS / languages.LANGUAGES[language].weights
    release = load_release(path)
    choice = release.metadata.get("choice")
    if not choice or release.metadata.get("train_config", {}).get("dev_corpus"):
        raise SystemExit(f"{path}: its choices were not made without trees; left as it is")
    first = reads_words_only(Parser.load(path))
    metadata = {**release.metadata, "default_punctuation_first": first,
                "choice": {**choice, "punctuation_first": first, "rule": RULE}}
    save_release(path, release.model, release.vocab, metadata, torch.float16)
    print(f"{language}: default_punctuation_first {first} ({path})")


if __name__ == "__main__":
    for code in sys.argv[1:]:
        restamp(code)
