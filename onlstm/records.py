"""The JSON record of one parse (what ``POST /parse`` and ``onlstm parse --format jsonl`` write),
read back into the library's own ``ParseResult``.

The client, the NLTK parser in service mode and the Ray integration all turn records into
``ParseResult`` objects here, so that code written against the local ``Parser`` works
unchanged against a service.  The tree is rebuilt from ``tokens`` and ``spans`` with the
same function the parser uses, so ``result.tree`` equals the local parser's tree.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from .models.parser import ParseResult
from .models.tree import spans_to_tree

_RESULT_FIELDS = {field.name for field in dataclasses.fields(ParseResult)}


def result_from_record(record: Mapping[str, Any]) -> ParseResult:
    """A ``ParseResult`` from one JSON record (``ParseResult.to_dict``'s output).

    ``perplexity`` null becomes NaN; ``layer_distances`` is empty unless the record has it
    (the service sends it only with ``all_layers``).
    """
    tokens = [str(token) for token in record["tokens"]]
    spans = [(int(start), int(end)) for start, end in record["spans"]]
    perplexity = record.get("perplexity")
    values: dict[str, Any] = {
        "tokens": tokens,
        "perplexity": math.nan if perplexity is None else float(perplexity),
        "distances": [float(distance) for distance in record["distances"]],
        "spans": spans,
        "tree": spans_to_tree(tokens, spans),
        "layer": int(record["layer"]),
        "layer_distances": [[float(value) for value in layer] for layer in record.get("layer_distances") or []],
    }
    return ParseResult(**{name: value for name, value in values.items() if name in _RESULT_FIELDS})
