"""The API's examples are the bundled model's real answers, through the real service: the
OpenAPI examples (``service/examples.json``: each request example with its answer, and the
``GET /model`` card) and the JSON blocks of the README and service/README.md that quote them.  A change of the model, the
decoder or the response format fails here until the examples are written again:

    .venv/bin/python -m tests.service.test_examples    # re-parses and rewrites examples.json and the documents' blocks

Numbers are kept to four significant digits (the docs' precision) and compared with that
tolerance, so that other float rounding on another CPU does not count as drift.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from onlstm.service.app import create_app
from onlstm.service.schemas import EXAMPLES, EXAMPLES_PATH
from onlstm.service.settings import load_settings

from ..helpers import REPO
from .test_app import wait_ready

README = REPO / "README.md"
# the documents that quote the examples: the guide (the answer to its first curl) and the service's own
DOCUMENTS = (README, REPO / "service" / "README.md")
SIGNIFICANT_DIGITS = 4
# <!-- example: parse text --> or <!-- example: model -->, then a ```json block: what the generator rewrites
README_BLOCK = re.compile(r"(<!-- example: (?P<name>[\w ]+) -->\n```json\n)(?P<body>.*?)(\n```)", re.DOTALL)
README_CURL = re.compile(r"-d '(?P<body>\{.*?\})'")


@contextmanager
def bundled_service() -> Iterator[TestClient]:
    """The real service (app, batcher, preparation workers) on the models bundled with the package, every language."""
    with TestClient(create_app(load_settings(batch_max_wait_ms=1))) as client:
        wait_ready(client, timeout=120)
        yield client


def rounded(value: Any) -> Any:
    """JSON with every float cut to the docs' precision (JSON documents a few levels deep)."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def answers(client: TestClient, committed: dict[str, Any]) -> dict[str, Any]:
    """The committed examples' requests with the service's answers to them, and its model card."""
    parse = {}
    for name, example in committed["parse"].items():
        response = client.post("/parse", json=example["request"])
        assert response.status_code == 200, (name, response.text)
        parse[name] = {**example, "response": rounded(response.json())}
    card = client.get("/model")
    assert card.status_code == 200, card.text
    return {"parse": parse, "model": rounded(card.json())}


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def assert_close(actual: Any, expected: Any, where: str = "") -> None:
    """Equal JSON, numbers within the docs' precision."""
    if isinstance(expected, float) or (isinstance(actual, float) and isinstance(expected, int)):
        assert actual == pytest.approx(expected, rel=2e-3, abs=1e-4), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), (where, list(actual), list(expected))
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual, expected)
        for index, (mine, theirs) in enumerate(zip(actual, expected)):
            assert_close(mine, theirs, f"{where}[{index}]")
    else:
        assert actual == expected, (where, actual, expected)


def layout(value: Any, open_levels: int, depth: int = 0) -> str:
    """JSON with the outer ``open_levels`` levels one item a line and everything deeper on one line."""
    flat = isinstance(value, list) and not any(isinstance(item, (dict, list)) for item in value)  # [1, 2, 3]
    if depth >= open_levels or not isinstance(value, (dict, list)) or not value or flat:
        return json.dumps(value, ensure_ascii=False)
    inner, outer = "  " * (depth + 1), "  " * depth
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(key)}: {layout(item, open_levels, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{outer}}}"
    items = [f"{inner}{layout(item, open_levels, depth + 1)}" for item in value]
    return "[\n" + ",\n".join(items) + f"\n{outer}]"


def cited(examples: dict[str, Any], name: str) -> Any:
    """What a document's block named ``name`` quotes: ``parse <example>`` (its answer) or ``model``."""
    kind, _, example = name.partition(" ")
    return examples["parse"][example]["response"] if kind == "parse" else examples[kind]


def readme_with(examples: dict[str, Any], text: str) -> str:
    """A document with each example block written from ``examples``."""
    def block(match: re.Match) -> str:
        open_levels = 3 if match["name"].startswith("parse") else 2  # a result, or the card's entries, a line each
        return match.group(1) + layout(cited(examples, match["name"]), open_levels) + match.group(4)

    return README_BLOCK.sub(block, text)


# --- the checks ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service() -> Iterator[TestClient]:
    with bundled_service() as client:
        yield client


def test_the_examples_are_the_bundled_models_answers(service):
    assert_close(answers(service, EXAMPLES), EXAMPLES)


def test_every_example_answer_is_a_binary_tree():
    for name, example in EXAMPLES["parse"].items():
        for result in example["response"]["results"]:
            n = len(result["tokens"])
            assert len(result["spans"]) == max(n - 1, 0), (name, result["tokens"], result["spans"])


def test_the_openapi_document_carries_them(service):
    schema = service.get("/openapi.json").json()
    operation = schema["paths"]["/parse"]["post"]
    requests = operation["requestBody"]["content"]["application/json"]["examples"]
    answered = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert {name: example["value"] for name, example in requests.items()} == \
        {name: example["request"] for name, example in EXAMPLES["parse"].items()}
    # FastAPI leaves every null out of the OpenAPI document, the examples' included
    assert {name: example["value"] for name, example in answered.items()} == \
        {name: without_nulls(example["response"]) for name, example in EXAMPLES["parse"].items()}
    components = schema["components"]["schemas"]
    assert components["ParseResponse"]["examples"] == [without_nulls(EXAMPLES["parse"]["text"]["response"])]
    assert components["ModelCard"]["examples"] == [without_nulls(EXAMPLES["model"])]
    assert "path" not in components["ModelCard"]["properties"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_the_readme_quotes_the_examples(document):
    text = document.read_text(encoding="utf-8")
    blocks = {match["name"]: json.loads(match["body"]) for match in README_BLOCK.finditer(text)}
    assert blocks, f"{document.relative_to(REPO)} quotes no example"
    for name, quoted in blocks.items():
        assert quoted == cited(EXAMPLES, name), \
            f"{document.relative_to(REPO)} block {name!r}: run python -m tests.service.test_examples"
    # the curl commands whose answers are quoted (in the same document) send the examples' requests
    sent = [json.loads(match["body"]) for match in README_CURL.finditer(text)]
    for name in blocks:
        if name.startswith("parse "):
            assert EXAMPLES["parse"][name.removeprefix("parse ")]["request"] in sent, (document.name, name)


def test_the_documents_together_quote_every_example():
    quoted = {match["name"] for document in DOCUMENTS
              for match in README_BLOCK.finditer(document.read_text(encoding="utf-8"))}
    assert {"parse text", "parse all_layers", "model"} <= quoted


def main() -> None:
    with bundled_service() as client:
        examples = answers(client, json.loads(EXAMPLES_PATH.read_text(encoding="utf-8")))
    EXAMPLES_PATH.write_text(layout(examples, 6) + "\n", encoding="utf-8")
    for document in DOCUMENTS:
        document.write_text(readme_with(examples, document.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {EXAMPLES_PATH} and the example blocks of {', '.join(str(path) for path in DOCUMENTS)}")


if __name__ == "__main__":
    main()
