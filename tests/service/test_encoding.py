"""POST /parse's answer written by service.encoding: the bytes pydantic wrote, at any tree depth."""

import json
import sys

import pytest
from fastapi.testclient import TestClient

from onlstm.models.json_text import dumps
from onlstm.models.parser import Parser
from onlstm.service.app import create_app
from onlstm.service.encoding import parse_response_json
from onlstm.service.schemas import ParseResponse
from onlstm.service.settings import load_settings

from .test_app import wait_ready

SENTENCES = ["The cat sat on the mat .", "“ Quotes , ” he said ( twice ) .", "Ünïcödé 北京 works", "one"]


@pytest.mark.parametrize("all_layers", [False, True])
def test_the_bytes_are_those_of_the_response_model(tiny_checkpoint, all_layers):
    parser = Parser.load(tiny_checkpoint)
    records = [result.to_dict(all_layers) for result in parser.parse_many(SENTENCES)]
    records[0]["perplexity"] = None  # a perplexity that was not computed
    model = {"name": "onlstm-tiny-test", "version": "abc"}
    through_pydantic = ParseResponse.model_validate({"model": model, "results": records}).model_dump_json()
    assert parse_response_json(model, records) == through_pydantic.encode("utf-8")


def test_the_stack_writer_equals_the_one_call_writer(tiny_checkpoint, monkeypatch):
    from onlstm.models import json_text

    records = [result.to_dict(True) for result in Parser.load(tiny_checkpoint).parse_many(SENTENCES)]
    model = {"name": "tiny", "version": "abc"}
    at_once = parse_response_json(model, records)
    monkeypatch.setattr(json_text, "SAFE_DEPTH", 0)  # every result written with the explicit stack
    assert parse_response_json(model, records) == at_once


def test_nested_json_at_any_depth():
    def nested_json(tree):  # how the service writes a result's nested tree
        return dumps(tree, (",", ":"))

    chain: list = ["z"]
    for index in range(5000):
        chain = [str(index), chain]
    text = nested_json(chain)
    assert text.startswith('["4999",["4998",') and text.endswith('"z"' + "]" * 5001)
    assert nested_json([["a", "b"], "c"]) == json.dumps([["a", "b"], "c"], separators=(",", ":"))
    assert nested_json("one") == '"one"'


def test_a_tree_deeper_than_pydantic_reads_is_answered(tiny_checkpoint):
    """A 1,200-token chain with the strongest prior: 1,200 lists deep (pydantic stops near 250)."""
    settings = load_settings(checkpoint=str(tiny_checkpoint), max_tokens_per_sentence=2000)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        answer = client.post("/parse", json={"tokens": [["the"] * 1200], "right_branching_bias": 100})
        assert answer.status_code == 200
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(5000)  # json's C reader counts nesting against it (1,200 levels are safe)
        try:
            result = json.loads(answer.content)["results"][0]
        finally:
            sys.setrecursionlimit(limit)
        assert len(result["spans"]) == 1199 and result["spans"][1] == [1, 1200]
        depth, node = 0, result["nested"]
        while isinstance(node, list):
            depth, node = depth + 1, node[1]
        assert depth == 1199
