"""``python -m benchmarks``: run the benchmarks and print a table (``--json``: one JSON line each).

    python -m benchmarks                       # all of them (about 10-15 minutes on 2 cores)
    python -m benchmarks --quick               # shorter runs, rougher figures
    python -m benchmarks --only train --only inference --json
    python -m benchmarks --only parse --quick  # onlstm parse on 2,000 and 20,000 Brown sentences
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time

import torch

from benchmarks.common import machine

BENCHMARKS = {
    "train": "benchmarks.train_speed",
    "inference": "benchmarks.inference_speed",
    "service": "benchmarks.service_load",
    "memory": "benchmarks.memory",
    "precision": "benchmarks.precision",
    "text": "benchmarks.text_speed",
    "parse": "benchmarks.parse_speed",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and requests: rougher, faster")
    parser.add_argument("--json", action="store_true", help="also print one JSON line per benchmark")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}; torch threads {torch.get_num_threads()}", flush=True)
    for name in args.only or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        started = time.perf_counter()
        result = module.run(quick=args.quick)
        result["seconds"] = round(time.perf_counter() - started, 1)
        print()
        print("\n".join(module.table(result)), flush=True)
        if args.json:
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
