"""The ``onlstm`` command: one entry point, a thin module per subcommand.

    onlstm serve [--host H] [--port P]       the HTTP service on the bundled model
    onlstm parse INPUT [-o OUTPUT]           parse text offline
    onlstm train --preset cpu --out DIR      train a model
    onlstm eval [--checkpoint PATH]          score a model on gold trees
    onlstm sweep PLAN.json --out DIR         run several training runs side by side

A subcommand's module is imported only when it is chosen, so ``onlstm parse`` never
loads the web stack and ``onlstm serve`` never loads training.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": "start the HTTP service",
    "parse": "parse text offline (JSON Lines, PTB trees or pretty trees)",
    "train": "train an ON-LSTM language model",
    "eval": "score a checkpoint on .mrg gold trees against the baselines",
    "sweep": "run a plan of training runs side by side and tabulate them",
}
# module names that differ from the command (``eval`` would shadow the builtin)
MODULES = {"eval": "evaluate"}


def usage() -> str:
    lines = ["usage: onlstm COMMAND [options]", "       onlstm --version", "", "commands:"]
    lines += [f"  {name:<6} {description}" for name, description in COMMANDS.items()]
    lines += ["", "`onlstm COMMAND --help` describes each command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from .. import __version__

        print(f"onlstm {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"onlstm: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{MODULES.get(command, command)}")
    return int(module.main(rest) or 0)
