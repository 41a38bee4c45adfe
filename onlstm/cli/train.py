"""``onlstm train``: the command line of ``onlstm.training.train``.

    onlstm train --preset cpu --out runs/cpu
    onlstm train --out runs/cpu --resume --max-steps 2000
    torchrun --standalone --nproc-per-node=2 -m onlstm train --preset cpu --out runs/ddp

A fresh run is the preset with the named flags and ``--set field=value`` applied (the
flags win).  ``--resume`` continues with the configuration saved in ``OUT/last.pt``: the
run length (and ``--preset``'s run length), the device and the data folder may change;
anything else given on the command line that differs from the checkpoint is refused.
Exit status: 0 done, 1 the run diverged (non-finite losses), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..models.checkpoint import CheckpointError
from ..training.config import RUN_LENGTH_FIELDS, TrainConfig, load_preset
from ..training.corpora import CorpusError
from ..training.train import train
from ..training.trainer import TrainingDiverged, saved_config

logger = logging.getLogger("onlstm.training")

DEFAULT_PRESET = "cpu"


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onlstm train", description="Train an ON-LSTM language model.")
    parser.add_argument("--preset", help=f"tiny, cpu, default, gpu-paper, or a JSON file (default: {DEFAULT_PRESET})")
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
        "corpora": [item for item in args.corpora.split(",") if item] if args.corpora is not None else None,
        "data_dir": args.data,
        "device": args.device,
        "init_from": args.init_from,
    }
    return {name: value for name, value in values.items() if value is not None}


def requested_config(args: argparse.Namespace) -> TrainConfig:
    """The preset with ``--set`` and the named flags; on ``--resume``, the checkpoint's config with them."""
    base = saved_config(args.out) if args.resume else None
    if base is None:
        base = load_preset(args.preset or DEFAULT_PRESET)
    elif args.preset:
        preset = load_preset(args.preset)
        logger.info("--resume: the model, data and optimisation come from the checkpoint; --preset gives the run length")
        base = base.updated({name: getattr(preset, name) for name in RUN_LENGTH_FIELDS})
    return base.override(args.set).updated(named_flags(args))


def main(argv: list[str] | None = None) -> int:
    args = build_argparser().parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    level = args.log_level.upper()
    if rank and level in ("DEBUG", "INFO"):  # under torchrun only rank 0 logs below WARNING
        level = "WARNING"
    rank_tag = f" [rank {rank}]" if rank else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s %(name)s{rank_tag}: %(message)s")
    try:
        train(requested_config(args), args.out, resume=args.resume)
    except (ValueError, CorpusError, CheckpointError) as error:
        logger.error("%s", error)
        return 2
    except TrainingDiverged as error:
        logger.error("%s", error)
        return 1
    return 0
