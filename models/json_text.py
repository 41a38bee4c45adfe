"""JSON text of a parse record at any depth.

A sentence's ``nested`` tree is as deep as the tree: a right-branching chain of n tokens is n
lists deep, and Python's ``json`` module stops near 1,000 levels (``RecursionError``), so a long
sentence parsed with a raised token limit could not be written.  ``dumps`` writes what
``json.dumps(value, ensure_ascii=False, separators=...)`` writes, with an explicit stack for
lists and dicts and ``json`` for every scalar, so the text is byte for byte the same
(``tests/models/test_long_sentences.py`` checks that against ``json.dumps`` on random values).
``onlstm parse --format jsonl`` and the service's answers both write with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["SAFE_DEPTH", "dumps"]

# Up to this many levels json's own C encoder is safe (it stops near 1,000) and several times
# faster than writing piece by piece; a tree over n tokens is at most n - 1 lists deep.
SAFE_DEPTH = 500
_END: Any = object()


def dumps(value: Any, separators: tuple[str, str] = (", ", ": "), depth_hint: int | None = None,
          allow_nan: bool = False) -> str:
    """``value`` (dicts with str keys, lists, tuples, str, int, float, bool, None) as JSON text,
    UTF-8 characters unescaped, at any depth.  ``depth_hint``: an upper bound of its depth when
    the caller knows one (a record's token count); under ``SAFE_DEPTH`` json's encoder writes it.
    ``allow_nan``: as ``json.dumps``'s (NaN is not JSON: off by default)."""
    def scalar(item: Any) -> str:
        return json.dumps(item, ensure_ascii=False, allow_nan=allow_nan, separators=separators)

    if depth_hint is not None and depth_hint < SAFE_DEPTH:
        return scalar(value)
    item_separator, key_separator = separators
    pieces: list[str] = []
    # one frame per open container: its items, its closing mark, whether an item was written
    frames: list[tuple[Iterator[Any], str, list[bool]]] = []
    pending: Any = value
    while True:
        if pending is not _END:
            if isinstance(pending, dict):
                pieces.append("{")
                frames.append((iter(pending.items()), "}", [False]))
            elif isinstance(pending, (list, tuple)):
                pieces.append("[")
                frames.append((iter(pending), "]", [False]))
            else:
                pieces.append(scalar(pending))
        if not frames:
            return "".join(pieces)
        items, closer, written = frames[-1]
        item: Any = next(items, _END)
        if item is _END:
            frames.pop()
            pieces.append(closer)
            pending = _END
            continue
        if written[0]:
            pieces.append(item_separator)
        written[0] = True
        if closer == "}":
            key, item = item
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            pieces.append(scalar(key) + key_separator)
        pending = item

