"""JSON text of a parse record at any depth.

A sentence's ``nested`` tree is as deep as the tree: a right-branching chain of n tokens is n
lists deep, and Python's ``json`` module stops near 1,000 levels (``RecursionError``), so a long
sentence parsed with a raised token limit could not be written.  ``dumps`` writes what
``json.dumps(value, ensure_ascii=False, separators=...)`` writes, with an explicit stack for
lists and dicts and ``json`` for every scalar, so the text is byte for byte the same
(``tests/models/test_long_sentences.py`` checks that against ``json.dumps`` on random values).
``onlstm parse --format jsonl`` and the service's answers both write with it; ``loads`` reads
such text back at any depth (the client reads the service's answers with it), checked against
``json.loads`` likewise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["SAFE_DEPTH", "dumps", "loads"]

# Up to this many levels json's own C encoder is safe (it stops near 1,000) and several times
# faster than writing piece by piece; a tree over n tokens is at most n - 1 lists deep.
SAFE_DEPTH = 500
_END: Any = object()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALARS = json.JSONDecoder()  # reads one string, number or literal; containers are read here


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



def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)`` at any depth: json's reader, and where it stops for depth
    (``RecursionError``) the same text read with an explicit stack, json reading every scalar.
    Bytes are decoded as ``json.loads`` decodes them (UTF-8, -16 or -32, told by their first bytes).
    Malformed text raises ``json.JSONDecodeError`` either way."""
    try:
        return json.loads(text)
    except RecursionError:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        return _read_deep(text)


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


def _read_key(text: str, index: int) -> tuple[str, int]:
    """The key of an object's member at ``index`` and where its value starts."""
    if text[index:index + 1] != '"':
        raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, index)
    key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
    index = _skip(text, index)
    if text[index:index + 1] != ":":
        raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
    return key, _skip(text, index + 1)


def _read_deep(text: str) -> Any:
    """One JSON value: ``containers`` holds the open lists and dicts, ``keys`` each one's key
    being read (None for a list)."""
    containers: list[Any] = []
    keys: list[str | None] = []
    index = _skip(text, 0)
    while True:
        # a value starts at `index`
        opening = text[index:index + 1]
        if opening in ("[", "{"):
            index = _skip(text, index + 1)
            if text[index:index + 1] == ("]" if opening == "[" else "}"):
                value: Any = [] if opening == "[" else {}
                index += 1
            else:
                containers.append([] if opening == "[" else {})
                key = None
                if opening == "{":
                    key, index = _read_key(text, index)
                keys.append(key)
                continue
        else:
            value, index = _SCALARS.raw_decode(text, index)
        # `value` is complete: put it in its container, and close what ends after it
        while True:
            index = _skip(text, index)
            if not containers:
                if index != len(text):
                    raise json.JSONDecodeError("Extra data", text, index)
                return value
            container = containers[-1]
            if isinstance(container, list):
                container.append(value)
            else:
                container[keys[-1]] = value
            mark = text[index:index + 1]
            if mark == ",":
                index = _skip(text, index + 1)
                if isinstance(container, dict):
                    keys[-1], index = _read_key(text, index)
                break
            if mark != ("]" if isinstance(container, list) else "}"):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
            value = containers.pop()
            keys.pop()
            index += 1
