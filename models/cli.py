"""The ``onlstm`` command: one entry point, a subcommand per job.

    onlstm serve [--host H] [--port P]       the HTTP service on the bundled model
    onlstm parse INPUT [-o OUTPUT]           parse a file offline
    onlstm train --preset cpu --out DIR      train a model
    onlstm eval [--checkpoint PATH]          score a model on gold trees

Each subcommand lives with its package and is imported only when chosen, so
``onlstm parse`` never loads the web stack and ``onlstm serve`` never loads training.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("service.__main__", "start the HTTP service"),
    "parse": ("models.parse_command", "parse text offline (JSON Lines, PTB trees or pretty trees)"),
    "train": ("training.train", "train an ON-LSTM language model"),
    "eval": ("training.evaluate", "score a checkpoint on .mrg gold trees against the baselines"),
}


def usage() -> str:
    lines = ["usage: onlstm COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<6} {description}" for name, (_, description) in COMMANDS.items()]
    lines += ["", "`onlstm COMMAND --help` describes each command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"onlstm: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
