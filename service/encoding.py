"""The JSON of ``POST /parse``'s answer, written without pydantic and without recursion.

A sentence's ``nested`` tree is as deep as the tree: a right-branching chain of n tokens is n
lists deep.  pydantic refuses to validate or serialize a value nested more than about 250
levels (so a longer sentence answered 500 when ``ONLSTM_MAX_TOKENS_PER_SENTENCE`` was raised),
and Python's ``json`` module stops near 1,000.  Each result is written by
``models.json_text.dumps`` (an explicit stack past ``SAFE_DEPTH`` levels, the same writer as
``onlstm parse --format jsonl``); the bytes are those FastAPI wrote through ``ParseResponse``
(field order, nulls for absent fields, compact separators, UTF-8 unescaped:
``tests/service/test_encoding.py``).  ``ParseResponse`` still describes the answer in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models.json_text import dumps
from .schemas import SentenceResult

_FIELDS = tuple(SentenceResult.model_fields)
_DEFAULTS = {name: field.get_default(call_default_factory=True) for name, field in SentenceResult.model_fields.items()}
_COMPACT = (",", ":")


def result_json(record: dict[str, Any]) -> str:
    """One result (``ParseResult.to_dict``) in ``SentenceResult``'s field order, absent fields null."""
    ordered = {name: record.get(name, _DEFAULTS[name]) for name in _FIELDS}
    return dumps(ordered, _COMPACT, depth_hint=len(record["tokens"]))


def parse_response_json(model: dict[str, Any], records: Sequence[dict[str, Any]]) -> bytes:
    """The whole answer: ``{"model": ..., "results": [...]}``."""
    results = ",".join(result_json(record) for record in records)
    return ('{"model":' + dumps(model, _COMPACT, depth_hint=1) + ',"results":[' + results + "]}").encode("utf-8")
