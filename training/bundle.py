"""Ship a run's chosen release as a language's bundled model.

    python -m onlstm.training.bundle runs/es-s1 --language es

copies the run's ``best.safetensors`` (the checkpoint, layer and prior its tree-free choice
stamped there at the end of training) to ``models/weights/es.safetensors``
(``default.safetensors`` for English), with what a served result and the model card read:

* ``name``: the public model name each parse result carries (``--name``; by default the name
  of the model bundled for the language now, so that a client's records stay comparable, or
  ``onlstm-LANG`` for a language with no model yet);
* ``seed``: the run's seed (``train_config.seed``), which the card prints;
* the weights in float16, as every bundled model stores them (half the size in the wheel; the
  parser computes in float32 either way).

It refuses a release of another language than ``--language``.  The card is then written again
with ``python -m onlstm.training.cards``, whose command this prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from ..models import languages as registry
from ..models.checkpoint import CheckpointError, load_release, save_release

logger = logging.getLogger(__name__)

__all__ = ["bundle_release", "bundled_path", "main"]


def _current_name(target: Path) -> str | None:
    if not target.is_file():
        return None
    try:
        return str(load_release(target).metadata.get("name") or "") or None
    except CheckpointError:
        return None


def bundled_path(language: str, target: Path | None = None) -> Path:
    """``target`` (a file, or a folder to hold the file under the language's bundled name), or
    ``language``'s file in ``models/weights``; ``LanguageError`` for an unknown language."""
    registry.check_known(language, tuple(registry.LANGUAGES))
    file_name = registry.LANGUAGES[language].weights
    if target is None:
        return registry.WEIGHTS / file_name
    return Path(target) / file_name if Path(target).is_dir() else Path(target)


def bundle_release(source: Path, language: str, target: Path | None = None, name: str | None = None) -> dict:
    """Write the release ``source`` as ``language``'s bundled model (``target``: by default its file
    in ``models/weights``); returns the metadata written."""
    target = bundled_path(language, target)
    release = load_release(source)
    found = registry.release_language(release.metadata)
    if found != language:
        raise CheckpointError(f"{source} is a model of {found!r}, not of {language!r}: "
                              f"bundle it with --language {found}, or pick a run trained with --language {language}",
                              "language_mismatch")
    seed = (release.metadata.get("train_config") or {}).get("seed")
    metadata = {**release.metadata, "name": name or _current_name(target) or f"onlstm-{language}"}
    if seed is not None:
        metadata["seed"] = seed
    target.parent.mkdir(parents=True, exist_ok=True)
    save_release(target, release.model, release.vocab, metadata, torch.float16)
    logger.info("%s -> %s (%s, seed %s)", source, target, metadata["name"], seed)
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onlstm.training.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (its best.safetensors) or a release file")
    parser.add_argument("--language", required=True, help="the language it ships for: en, zh, es, pt or nl")
    parser.add_argument("--name", default=None, help="the public model name (default: the bundled model's now)")
    parser.add_argument("--out", type=Path, default=None, help="write to this file, or into this folder under the bundled name, instead of models/weights")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source = arguments.run / "best.safetensors" if arguments.run.is_dir() else arguments.run
    try:
        target = bundled_path(arguments.language, arguments.out)
        metadata = bundle_release(source, arguments.language, target, arguments.name)
    except (CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{target}: {metadata['name']}, seed {metadata.get('seed')}, layer {metadata.get('default_layer')}, "
          f"prior {metadata.get('default_right_branching_bias')}, held-out perplexity "
          f"{metadata.get('dev_perplexity', float('nan')):.1f}")
    if arguments.language != "en":
        print(f"now write its card: python -m onlstm.training.cards {arguments.language} --release {target} "
              f"--report REPORT.json --out {target.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
