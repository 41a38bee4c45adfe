"""``onlstm sweep``: the command line of ``onlstm.training.sweep`` (several training runs side by side).

    onlstm sweep training/sweeps/ablation.json --out runs/ablation --parallel 9 --max-minutes 7
    onlstm sweep --summarize runs/ablation

Exit status: 0 every run finished, 1 a run failed (its ``train.log`` says why) or nothing to
summarize, 2 a plan that cannot be read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..training.sweep import load_plan, markdown_table, run_sweep, summarize

logger = logging.getLogger("onlstm.training.sweep")


def build_argparser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlstm sweep", description="Run a plan of training runs side by side and tabulate them."
    )
    parser.add_argument("plan", nargs="?", type=Path, help="the plan (JSON); omit with --summarize")
    parser.add_argument("--out", type=Path, help="one folder per run is made inside")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget of each run")
    parser.add_argument("--only", help="comma-separated run names to run (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="added to every run")
    parser.add_argument("--summarize", type=Path, metavar="OUT", help="print the table of an earlier sweep and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_argparser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.summarize:
        rows = summarize(args.summarize)
        print(markdown_table(rows))
        return 0 if rows else 1
    if args.plan is None or args.out is None:
        parser.error("give a plan and --out (or --summarize OUT)")
    try:
        plan = load_plan(args.plan)
    except (OSError, ValueError) as error:
        logger.error("%s", error)
        return 2
    extra = list(args.set)
    if args.max_minutes is not None:
        extra.append(f"max_minutes={args.max_minutes}")
    only = set(args.only.split(",")) if args.only else None
    summary = run_sweep(plan, args.out, args.parallel, extra, only)
    print(markdown_table(summary["runs"]))
    failed = sorted(name for name, status in summary["statuses"].items() if status != 0)
    if failed:
        logger.error("runs that failed (see their train.log): %s", ", ".join(failed))
    return 1 if failed else 0
