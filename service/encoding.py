"""The JSON of ``POST /parse``'s answer, written without pydantic and without recursion.

A sentence's ``nested`` tree is as deep as the tree: a right-branching chain of n tokens is n
lists deep.  pydantic refuses to validate or serialize a value nested more than about 250
levels (so a longer sentence answered 500 when ``ONLSTM_MAX_TOKENS_PER_SENTENCE`` was raised),
and Python's ``json`` module stops near 1,000.  Here ``nested`` is written with an explicit
stack and the rest of each result with ``json.dumps``; the bytes are those FastAPI wrote through
``ParseResponse`` (field order, nulls for absent fields, compact separators, UTF-8 unescaped:
``tests/service/test_encoding.py``).  ``ParseResponse`` still describes the answer in OpenAPI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from .schemas import SentenceResult

_FIELDS = tuple(SentenceResult.model_fields)
_DEFAULTS = {name: field.get_default(call_default_factory=True) for name, field in SentenceResult.model_fields.items()}
_END = object()
# A tree over n tokens is at most n - 1 lists deep: up to this many tokens json's own encoder is
# safe however the tree branches (it stops near 1,000 levels), and several times faster than
# writing field by field.
SHALLOW_TOKENS = 500


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def nested_json(tree: Any) -> str:
    """A tree of nested lists (leaves: strings) as JSON text, at any depth."""
    if not isinstance(tree, list):
        return _scalar(tree)
    pieces = ["["]
    pending: list[Iterator[Any]] = [iter(tree)]
    first = [True]
    while pending:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
            first.pop()
            pieces.append("]")
            continue
        if not first[-1]:
            pieces.append(",")
        first[-1] = False
        if isinstance(item, list):
            pieces.append("[")
            pending.append(iter(item))
            first.append(True)
        else:
            pieces.append(_scalar(item))
    return "".join(pieces)


def result_json(record: dict[str, Any]) -> str:
    """One result (``ParseResult.to_dict``) in ``SentenceResult``'s field order, absent fields null."""
    if len(record["tokens"]) <= SHALLOW_TOKENS:  # one call of json's C encoder: the common case
        return _scalar({name: record.get(name, _DEFAULTS[name]) for name in _FIELDS})
    fields = []
    for name in _FIELDS:
        value = record.get(name, _DEFAULTS[name])
        fields.append(f'"{name}":' + (nested_json(value) if name == "nested" else _scalar(value)))
    return "{" + ",".join(fields) + "}"


def parse_response_json(model: dict[str, Any], records: Sequence[dict[str, Any]]) -> bytes:
    """The whole answer: ``{"model": ..., "results": [...]}``."""
    results = ",".join(result_json(record) for record in records)
    return ('{"model":' + _scalar(model) + ',"results":[' + results + "]}").encode("utf-8")
