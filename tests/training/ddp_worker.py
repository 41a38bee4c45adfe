"""Run by tests/test_distributed.py under ``torchrun``: several training runs in one process group.

    torchrun --standalone --nproc-per-node=2 tests/training/ddp_worker.py jobs.json

``jobs.json`` is a list of ``{"config": TrainConfig dict, "out": folder, "resume": bool}``.
Starting the processes once and training several runs in them keeps the test short.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from onlstm.training.config import TrainConfig
from onlstm.training.train import train


def main(jobs_path: str) -> None:
    jobs = json.loads(Path(jobs_path).read_text())
    dist.init_process_group("gloo")  # train() joins this group instead of starting its own
    try:
        for job in jobs:
            train(TrainConfig.from_dict(job["config"]), Path(job["out"]), resume=job.get("resume", False))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
