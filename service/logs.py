"""Logging set-up, and ``loggable``: every request-controlled value goes through it before it
reaches a log line, so that a client cannot write a line of its own (a newline in a URL) or
hide a part of one (a carriage return, a terminal escape)."""

from __future__ import annotations

import logging

LOGGABLE_CHARS = 300  # a longer value is cut (with its length said), so one request cannot flood the log


def loggable(value: object, limit: int = LOGGABLE_CHARS) -> str:
    """``value`` as printable ASCII on one line: control characters, non-ASCII characters and the
    backslash itself are written as Python escapes (``\\n``, ``\\x1b``, ``\\u2028``, ``\\\\``), so
    the line reads back unambiguously.  Bytes are read as Latin-1 (one character per byte)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    escaped = text[:limit].encode("unicode_escape").decode("ascii")
    return f"{escaped}...[{len(text)} chars]" if len(text) > limit else escaped


def configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    root = logging.getLogger()
    if not root.handlers:  # uvicorn configures only its own loggers; ours would otherwise be silent
        logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("service", "models", "onlstm"):
        logging.getLogger(name).setLevel(numeric)
