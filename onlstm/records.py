"""The JSON record of one parse (what ``POST /parse`` and ``onlstm parse --format jsonl`` write),
read back into the library's own ``ParseResult``.

The client, the NLTK parser in service mode and the Ray integration all turn records into
``ParseResult`` objects here, so that code written against the local ``Parser`` works
unchanged against a service.  The tree is rebuilt from ``tokens`` and ``spans`` with the
same function the parser uses, so ``result.tree`` equals the local parser's tree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .models.languages import DEFAULT_LANGUAGE
from .models.parser import ParseResult
from .models.text.sentences import Sentence
from .models.trees.decoders import bracketing_spans, spans_to_tree


def result_from_record(record: Mapping[str, Any]) -> ParseResult:
    """A ``ParseResult`` from one JSON record (``ParseResult.to_dict``'s output).

    ``perplexity`` null becomes NaN; ``sentence.offsets`` are the record's ``offsets`` (None
    when it has none); ``layer_distances`` and ``layer_spans`` (hence ``layer_tree``) are
    empty unless the record has ``layer_distances`` and ``layer_trees`` (the service sends
    them only with ``all_layers``).
    """
    tokens = [str(token) for token in record["tokens"]]
    spans = [(int(start), int(end)) for start, end in record["spans"]]
    perplexity = record.get("perplexity")
    offsets = record.get("offsets")
    sentence = Sentence(tuple(tokens), tuple((int(start), int(end)) for start, end in offsets) if offsets else None)
    return ParseResult(
        tokens=tokens,
        perplexity=math.nan if perplexity is None else float(perplexity),
        distances=[float(distance) for distance in record["distances"]],
        spans=spans,
        tree=spans_to_tree(tokens, spans),
        layer=int(record["layer"]),
        layer_distances=[[float(value) for value in layer] for layer in record.get("layer_distances") or []],
        sentence=sentence,
        unk_share=float(record.get("unk_share") or 0.0),
        warnings=[str(warning) for warning in record.get("warnings") or []],
        # only the structure of each layer's tree matters here, so its escaped leaves need no unescaping;
        # read with a stack: a long sentence's tree is deeper than Tree.fromstring reads
        layer_spans=[bracketing_spans(tree) for tree in record.get("layer_trees") or []],
        # records from before there were languages are English; the service writes the model beside each result
        language=str(record.get("language") or DEFAULT_LANGUAGE),
        model={str(key): str(value) for key, value in (record.get("model") or {}).items()},
    )
