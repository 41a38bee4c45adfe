"""``onlstm train``: the command line of ``onlstm.training.train``.

    onlstm train --preset cpu --out runs/cpu
    onlstm train --language es --text mi_texto.txt --out runs/es    # your own text, any language, no tree
    onlstm train --language ja --tokens words.txt --out runs/ja     # tokenized already: one sentence a line
    onlstm train --language zh --text 中文.txt --out runs/zh          # Chinese: read a character at a time
    onlstm train --out runs/cpu --resume --max-steps 2000
    torchrun --standalone --nproc-per-node=2 -m onlstm train --preset cpu --out runs/ddp

A fresh run is the preset with the named flags and ``--set field=value`` applied (the
flags win).  ``--resume`` continues with the configuration saved in ``OUT/last.pt``: the
run length (and ``--preset``'s run length), the device and the data folder may change;
anything else given on the command line that differs from the checkpoint is refused.
With ``--language`` other than ``en`` the preset defaults to ``language`` (sized for 0.1-1.3M
words).  Text of your own (``--text``, or only files in ``--corpora``) with no ``--dev`` trees
trains without any tree: checkpoints are selected on held-out perplexity and the layer and
prior are chosen by ``onlstm.training.choice``'s tree-free rule, written into
``best.safetensors``; ``--dev DIR`` (a treebank) adds the oracle rows to ``choice.json``.
Exit status: 0 done, 1 the run diverged (non-finite losses), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..models.checkpoint import CheckpointError
from ..training.config import RUN_LENGTH_FIELDS, TrainConfig, load_preset
from ..training.corpora import TOKENS_PREFIX, CorpusError, own_file
from ..training.train import train
from ..training.trainer import TrainingDiverged, saved_config

logger = logging.getLogger("onlstm.training")

DEFAULT_PRESET = "cpu"
# What a language's model reads by default: Chinese its characters (0.14.0: the top layer of a character
# reader on fresh seeds; training/sweeps/results/preregistration-chinese-characters-top-layer.md)
LANGUAGE_UNITS = {"zh": "characters"}
# The language preset's run length for a character reader (0.15.0): it takes 1.6 steps a Sinica word, and the
# structure its input gate's bottom layer holds (the rule's choice for it) grows after step 1,000
# (training/sweeps/results/preregistration-chinese-characters-input-gate.md)
CHARACTER_READER_STEPS = 3000
LANGUAGE_PRESET = "language"  # the default preset of a language other than English
LANGUAGE_PRESET_NAME = "onlstm-language"  # its name field, replaced by onlstm-LANG in what it trains


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlstm train", description="Train an ON-LSTM language model.")
    parser.add_argument("--preset", help=f"tiny, cpu, default, gpu-paper, language, or a JSON file (default: "
                        f"{DEFAULT_PRESET}; {LANGUAGE_PRESET} for a language other than English)")
    parser.add_argument("--out", required=True, type=Path, help="folder for checkpoints and logs")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--init-from", metavar="RELEASE", help="start from a release's weights and vocabulary (fine-tune it on new text)"
    )
    parser.add_argument("--accumulate", type=int, help="micro-batches per optimizer step")
    parser.add_argument("--adversarial-epsilon", type=float, help="FGM epsilon on the embeddings (0 = off)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--corpora", help="comma-separated corpus names or text files")
    parser.add_argument("--text", action="append", metavar="FILE",
                        help="a plain-text file of your own (repeatable); split and tokenized by --language's rules")
    parser.add_argument("--tokens", action="append", metavar="FILE",
                        help="a file of your own tokenized already (repeatable): one sentence a line, tokens separated "
                        "by spaces, used as given (text your segmenter cut: Japanese, Thai ...; parse such text with "
                        "onlstm parse --input-format tokens)")
    parser.add_argument("--language", help="the text's language, any ISO 639-1 code (default en); en, zh, es, pt, nl have rules "
                        "of their own for splitting and tokenizing, every other language those shared by languages "
                        "written with spaces between words")
    parser.add_argument("--unit", choices=("words", "characters"),
                        help="what the model reads of each word (default: characters for zh, words for every other "
                        "language): characters reads each word's characters (a run of Latin letters or digits is one), "
                        "and the trees stay over words")
    parser.add_argument("--dev", metavar="TREEBANK", help="gold trees scored beside the tree-free choice (oracle rows): "
                        "ptb-dev, a .mrg file or folder, or the language's treebank folder")
    parser.add_argument("--data", help="the shared data folder (default: $ONLSTM_DATA or ../shared/data)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="set any TrainConfig field (model fields as model.NAME, e.g. model.hidden_size=600)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def named_flags(args: argparse.Namespace) -> dict:
    """The config fields the named flags set, with their parsed values (flags not given are left out)."""
    values = {
        "accumulate": args.accumulate,
        "adversarial_epsilon": args.adversarial_epsilon,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "max_minutes": args.max_minutes,
        "seed": args.seed,
        "corpora": _corpora(args),
        "language": args.language,
        "unit": args.unit,
        "dev_corpus": args.dev,
        "data_dir": args.data,
        "device": args.device,
        "init_from": args.init_from,
    }
    return {name: value for name, value in values.items() if value is not None}


def _corpora(args: argparse.Namespace) -> list[str] | None:
    named = [item for item in args.corpora.split(",") if item] if args.corpora is not None else []
    files = list(args.text or []) + [TOKENS_PREFIX + path for path in args.tokens or []]
    return named + files if (args.corpora is not None or files) else None


def _own_text_only(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """A preset's dev trees belong with the preset's corpora: a run on files of your own that names no
    ``--dev`` reads no tree (selection on held-out perplexity) instead of stopping at missing trees."""
    own = _corpora(args)
    if not own or args.dev or any("dev_corpus=" in item for item in args.set) or args.resume:
        return config
    if all(own_file(name) for name in own) and config.dev_corpus:
        logger.info("training on your own text with no --dev trees: checkpoints are selected on held-out perplexity "
                    "and the layer and prior chosen without trees (give --dev TREEBANK to add the oracle rows)")
        return config.updated({"dev_corpus": "", "select_on": "perplexity"})
    return config


def requested_config(args: argparse.Namespace) -> TrainConfig:
    """The preset with ``--set`` and the named flags; on ``--resume``, the checkpoint's config with them."""
    base = saved_config(args.out) if args.resume else None
    preset = None
    if base is None:
        preset = args.preset or (LANGUAGE_PRESET if args.language not in (None, "en") else DEFAULT_PRESET)
        base = load_preset(preset)
    elif args.preset:
        logger.info("--resume: the model, data and optimisation come from the checkpoint; --preset gives the run length")
        base = base.updated({name: getattr(load_preset(args.preset), name) for name in RUN_LENGTH_FIELDS})
    config = _own_text_only(base.override(args.set).updated(named_flags(args)), args)
    if preset is not None:
        config = _language_recipe(config, args, preset)
    if config.name == LANGUAGE_PRESET_NAME and not any(item.startswith("name=") for item in args.set):
        # the preset's name says how it was trained, not what it parses: each result carries the name
        config = config.updated({"name": f"onlstm-{config.language}"})
    return config


def _language_recipe(config: TrainConfig, args: argparse.Namespace, preset: str) -> TrainConfig:
    """A new run's defaults that follow from its language (the recipe of the language's bundled model),
    each kept only where the command says nothing of that field."""
    def said(field: str) -> bool:
        return getattr(args, field) is not None or any(item.startswith(f"{field}=") for item in args.set)

    if not said("unit") and config.language in LANGUAGE_UNITS:
        config = config.updated({"unit": LANGUAGE_UNITS[config.language]})
        logger.info("unit=%s, the default for %s (--unit words to read words)", config.unit, config.language)
    if config.unit == "characters" and preset == LANGUAGE_PRESET and not said("max_steps"):
        config = config.updated({"max_steps": CHARACTER_READER_STEPS})
        logger.info("max_steps=%d, the %s preset's for a character reader (--max-steps to set it)",
                    CHARACTER_READER_STEPS, LANGUAGE_PRESET)
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_argparser().parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    level = args.log_level.upper()
    if rank and level in ("DEBUG", "INFO"):  # under torchrun only rank 0 logs below WARNING
        level = "WARNING"
    rank_tag = f" [rank {rank}]" if rank else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s %(name)s{rank_tag}: %(message)s")
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        logger.error("--resume: %s holds no last.pt to continue from; leave out --resume to start a new run there",
                     args.out)
        return 2
    try:
        config = requested_config(args)
        if not config.corpora:
            raise CorpusError("nothing to train on: give --text FILE (plain text of your own) or --corpora NAMES")
        train(config, args.out, resume=args.resume)
    except (ValueError, CorpusError, CheckpointError) as error:
        logger.error("%s", error)
        return 2
    except TrainingDiverged as error:
        logger.error("%s", error)
        return 1
    return 0
