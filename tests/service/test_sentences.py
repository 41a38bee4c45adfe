"""Sentence splitting as users meet it: ``POST /parse {"text"}``, the sentences cut from the input
by the offsets the service returns (the Golden Rules, and everyday text)."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from onlstm.service.app import create_app
from onlstm.service.settings import load_settings

GOLDEN_RULES = json.loads((Path(__file__).parents[1] / "models" / "golden_rules_en.json").read_text(encoding="utf-8"))
EVERYDAY = [
    ("The cat sat. The dog ran.", ["The cat sat.", "The dog ran."]),
    ("I said no. He left anyway.", ["I said no.", "He left anyway."]),
    ("We lay in the sun. It was hot.", ["We lay in the sun.", "It was hot."]),
    ("The meeting ended at 5 p.m. Everyone went home.", ["The meeting ended at 5 p.m.", "Everyone went home."]),
]


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    app = create_app(load_settings(checkpoint=str(tiny_checkpoint), batch_max_wait_ms=1))
    with TestClient(app) as test_client:
        for _ in range(600):
            if test_client.get("/ready").status_code == 200:
                break
        yield test_client


def sentences_from_the_service(client, text: str) -> list[str]:
    response = client.post("/parse", json={"text": text})
    assert response.status_code == 200, response.text
    return [text[result["offsets"][0][0] : result["offsets"][-1][1]] for result in response.json()["results"]]


def test_golden_rules_through_the_api(client):
    right = [rule["sentences"] == sentences_from_the_service(client, rule["text"]) for rule in GOLDEN_RULES]
    assert sum(right) >= 47, [number for number, ok in enumerate(right, start=1) if not ok]


@pytest.mark.parametrize("text,sentences", EVERYDAY)
def test_everyday_text_through_the_api(client, text, sentences):
    assert sentences_from_the_service(client, text) == sentences


def test_a_repeated_sentence_is_not_one_long_sentence(client):
    response = client.post("/parse", json={"text": "The cat sat. " * 300})
    assert response.status_code == 413  # 300 sentences, over the per-request limit, not one 901-token sentence
    assert response.json()["error"]["code"] == "too_many_sentences"
