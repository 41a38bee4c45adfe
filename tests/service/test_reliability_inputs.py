"""Bad and unusual inputs through a real server, and isolation between concurrent requests.

Every input gets either a 4xx JSON error that names the problem or a valid parse; the model
never runs for a refused request (the batch counter does not move); and the server answers
the next request normally.  The server runs with the default limits (1 MB bodies, 256
sentences, 250 tokens a sentence, 100 characters a token).
"""

from __future__ import annotations

import json
import math
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx
import pytest
from nltk import Tree

from onlstm.models.trees.decoders import escape_token

from ..helpers import serving

pytestmark = pytest.mark.slow

GOOD = {"tokens": [["the", "cat", "sat", "on", "the", "mat"]]}


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    with serving(tiny_checkpoint, tmp_path_factory.mktemp("inputs") / "server.log") as process:
        yield process


def post_raw(server, body: bytes, content_type: str = "application/json", timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.base}/parse", content=body, headers={"Content-Type": content_type}, timeout=timeout)


def dumps(value) -> bytes:
    return json.dumps(value).encode()


# name: (body, content type, status, error code, words the message must contain)
REFUSED = {
    "empty text": (dumps({"text": ""}), "application/json", 422, "invalid_request", ["text", "empty"]),
    "whitespace only": (dumps({"text": " \n\t\u00a0\u2003 "}), "application/json", 422, "invalid_request",
                        ["text", "whitespace"]),
    "empty sentence list": (dumps({"sentences": []}), "application/json", 422, "invalid_request",
                            ["sentences", "at least 1"]),
    "empty tokens list": (dumps({"tokens": []}), "application/json", 422, "invalid_request", ["tokens", "at least 1"]),
    "empty token list": (dumps({"tokens": [[]]}), "application/json", 422, "invalid_request",
                         ["sentence 1", "no tokens"]),
    "whitespace sentence": (dumps({"sentences": ["a b", "  "]}), "application/json", 422, "invalid_request",
                            ["sentence 2", "whitespace"]),
    "10,000-token sentence as tokens": (dumps({"tokens": [["word"] * 10_000]}), "application/json", 422,
                                        "sentence_too_long", ["10000 tokens", "ONLSTM_MAX_TOKENS_PER_SENTENCE"]),
    "10,000-token sentence as text": (dumps({"text": "word " * 10_000}), "application/json", 422,
                                      "sentence_too_long", ["10000 tokens", "ONLSTM_MAX_TOKENS_PER_SENTENCE"]),
    "10,000 sentences": (dumps({"sentences": ["The cat sat."] * 10_000}), "application/json", 413,
                         "too_many_sentences", ["10000 sentences", "ONLSTM_MAX_SENTENCES"]),
    "10,000 sentences as text": (dumps({"text": "The cat sat on the mat. " * 10_000}), "application/json", 413,
                                 "too_many_sentences", ["10000 sentences", "ONLSTM_MAX_SENTENCES"]),
    "10,000 token lists": (dumps({"tokens": [["a", "b"]] * 10_000}), "application/json", 413,
                           "too_many_sentences", ["10000 sentences", "ONLSTM_MAX_SENTENCES"]),
    "5 MB body": (dumps({"text": "word " * 1_000_000}), "application/json", 413, "body_too_large",
                  ["larger than", "ONLSTM_MAX_BODY_BYTES"]),
    "invalid JSON": (b'{"text": "The cat sat.",', "application/json", 400, "invalid_json", ["not valid JSON"]),
    "JSON with a trailing comma": (b'{"text": "a b",}', "application/json", 400, "invalid_json", ["not valid JSON"]),
    "deeply nested JSON": (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "invalid_json", ["JSON"]),
    "a JSON array body": (b'["The cat sat."]', "application/json", 422, "invalid_request", ["JSON object"]),
    "an empty body": (b"", "application/json", 422, "invalid_request", ["JSON object"]),
    "form data": (b"text=The+cat+sat", "application/x-www-form-urlencoded", 422, "invalid_request",
                  ["JSON object"]),
    "text of the wrong type": (dumps({"text": 5}), "application/json", 422, "invalid_request", ["text", "string"]),
    "tokens of the wrong type": (dumps({"tokens": "The cat"}), "application/json", 422, "invalid_request",
                                 ["tokens", "list"]),
    "numbers as tokens": (dumps({"tokens": [[1, 2]]}), "application/json", 422, "invalid_request", ["tokens"]),
    "layer of the wrong type": (dumps({"text": "a b", "layer": "two"}), "application/json", 422, "invalid_request",
                                ["layer", "integer"]),
    "a layer the model lacks": (dumps({"text": "a b", "layer": 10**30}), "application/json", 422, "invalid_layer",
                                ["layer", "between 0 and 2"]),
    "an unknown decoder": (dumps({"text": "a b", "decoder": "cky"}), "application/json", 422, "invalid_request",
                           ["decoder"]),
    "an unknown field": (dumps({"text": "a b", "txet": "c"}), "application/json", 422, "invalid_request", ["txet"]),
    "invalid UTF-8 bytes": (b'{"text": "caf\xe9 \xff\xfe"}', "application/json", 400, "invalid_json", ["UTF-8"]),
    "an unpaired surrogate in text": (b'{"text": "a \\ud800 b"}', "application/json", 422, "invalid_request",
                                      ["surrogate", "Unicode"]),
    "an unpaired surrogate in a token": (b'{"tokens": [["a", "\\udfff"]]}', "application/json", 422,
                                         "invalid_request", ["token 2 of sentence 1", "surrogate"]),
    "a 100,000-character token": (dumps({"tokens": [["x" * 100_000]]}), "application/json", 422, "token_too_long",
                                  ["100000 characters", "ONLSTM_MAX_TOKEN_CHARS"]),
    "a 100,000-character word in text": (dumps({"text": "a " + "x" * 100_000}), "application/json", 422,
                                         "token_too_long", ["100000 characters", "ONLSTM_MAX_TOKEN_CHARS"]),
    "a token with a space": (dumps({"tokens": [["New York", "x" * 1000 + " y"]]}), "application/json", 422,
                             "invalid_request", ["whitespace"]),
    "both text and tokens": (dumps({"text": "a b", "tokens": [["a", "b"]]}), "application/json", 422,
                             "invalid_request", ["exactly one", "text and tokens"]),
    "no input at all": (dumps({"layer": 1}), "application/json", 422, "invalid_request", ["exactly one"]),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_input_gets_a_named_4xx_before_the_model_runs(server, name):
    body, content_type, status, code, words = REFUSED[name]
    batches_before = server.metric("onlstm_batch_sentences_count")
    response = post_raw(server, body, content_type)
    assert response.status_code == status, (name, response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code, (name, error)
    for word in words:
        assert word in error["message"], (name, word, error["message"])
    assert len(response.content) < 20_000, "an error must not echo the input back"
    # the limits act before the model: no model call was made for this request
    assert server.metric("onlstm_batch_sentences_count") == batches_before, name
    # and the server goes on serving
    assert httpx.post(f"{server.base}/parse", json=GOOD, timeout=60).status_code == 200


def check_parse(result: dict, tokens: list[str]) -> None:
    assert result["tokens"] == tokens
    tree = Tree.fromstring(result["tree"])
    assert tree.leaves() == [escape_token(token) for token in tokens]
    assert len(result["distances"]) == len(tokens) and all(math.isfinite(value) for value in result["distances"])
    assert math.isfinite(result["perplexity"]) and result["perplexity"] > 0
    assert all(0 <= start < end <= len(tokens) for start, end in result["spans"])


PARSED_TOKENS = {
    "NUL and control characters": [["a\u0000b", "c\u0007", "\u001b[31m", "\u007f", "d\u200b"]],
    "emoji": [["I", "\u2764\ufe0f", "\U0001F600", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "cats"]],
    "CJK": [["\u6211", "\u559c\u6b22", "\u732b", "\u3002"], ["\u732b\u304c", "\u5ea7\u3063\u305f"]],
    "right-to-left": [["\u05d4\u05d7\u05ea\u05d5\u05dc", "\u05d9\u05e9\u05d1"], ["\u0627\u0644\u0642\u0637",
                                                                                  "\u200f\u062c\u0644\u0633"]],
    "parentheses as tokens": [["(", ")", "a(b", "((x))", "-LRB-", ")(", "[", "{"]],
    "a single token": [["word"]],
    "combining marks": [["e\u0301", "\u0301", "\u0928\u093f"]],
}


@pytest.mark.parametrize("name", list(PARSED_TOKENS))
def test_unusual_tokens_get_a_valid_parse(server, name):
    tokens = PARSED_TOKENS[name]
    response = httpx.post(f"{server.base}/parse", json={"tokens": tokens, "all_layers": True}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert len(results) == len(tokens)
    for result, sentence in zip(results, tokens):
        check_parse(result, sentence)


PARSED_TEXT = {
    "NUL and control characters": "a\u0000b c\u0007d. Then \u001b[31mred\u001b[0m text.",
    "emoji": "I \u2764\ufe0f cats \U0001F600. Dogs \U0001F436 too!",
    "CJK": "\u6211\u559c\u6b22\u732b\u3002 \u732b\u304c\u5ea7\u3063\u305f\u3002",
    "right-to-left": "\u05d4\u05d7\u05ea\u05d5\u05dc \u05d9\u05e9\u05d1. \u0627\u0644\u0642\u0637 \u062c\u0644\u0633.",
    "parentheses": "The cat (a tabby) sat ((on)) the mat) (.",
    "mixed scripts": "The \u732b sat on the \u0645\u0627\u062a (mat) \U0001F600.",
}


@pytest.mark.parametrize("name", list(PARSED_TEXT))
def test_unusual_text_gets_a_valid_parse_with_offsets(server, name):
    text = PARSED_TEXT[name]
    response = httpx.post(f"{server.base}/parse", json={"text": text}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    for result in response.json()["results"]:
        check_parse(result, result["tokens"])
        assert [text[start:end] for start, end in result["offsets"]] == result["tokens"]


def test_a_body_that_keeps_streaming_past_the_limit_is_cut_off(server):
    """Chunked, no Content-Length, and the client would send 64 MB: the server answers 413 long before."""
    host, port = server.base.removeprefix("http://").split(":")
    chunk = b"word " * 13_000  # 65 KB
    limit, sent, answer = 64 * 2**20, 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"POST /parse HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" + b'5\r\n{"tex\r\n')
        started = time.monotonic()
        while sent < limit:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break
            try:
                connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:  # the server closed the connection after answering
                break
            sent += len(chunk)
        connection.settimeout(10)
        try:
            while part := connection.recv(65536):
                answer += part
                if b"\r\n\r\n" in answer and b"body_too_large" in answer:
                    break
        except OSError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body_too_large" in body and b"ONLSTM_MAX_BODY_BYTES" in body
    assert sent < limit / 4, f"the server let the client send {sent} bytes"
    assert time.monotonic() - started < 30
    assert httpx.post(f"{server.base}/parse", json=GOOD, timeout=60).status_code == 200


def test_a_client_that_hangs_up_mid_body_does_not_hurt_the_server(server):
    host, port = server.base.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"POST /parse HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 1000\r\n\r\n" + b'{"text": "The cat')
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GARBAGE / NOT-HTTP\r\n\r\n")
        connection.recv(1024)
    assert httpx.post(f"{server.base}/parse", json=GOOD, timeout=60).status_code == 200


def isolation_requests() -> list[dict]:
    """Distinct requests: different words, lengths, input forms and parse options (so batches mix keys)."""
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "chased", "into", "garden", "stocks", "fell", "company",
             "said", "it", "expects", "earnings", "to", "rise", "heavy", "trading", "(", ")", ",", "."]
    requests = []
    for index in range(96):
        sentences = [
            [words[(index * 7 + sentence * 5 + offset * 3) % len(words)] for offset in range(2 + (index + sentence) % 13)]
            + [f"w{index}s{sentence}"]
            for sentence in range(1 + index % 3)
        ]
        request: dict = {"tokens": sentences} if index % 2 else {"sentences": [" ".join(item) for item in sentences]}
        if index % 3 == 1:
            request["layer"] = index % 3
        if index % 5 == 0:
            request["decoder"] = "split"
        if index % 7 == 0:  # explicit; "model" is refused for the tiny model, whose vocabulary has no punctuation
            request["punctuation"] = "attach"
        if index % 11 == 0:
            request["all_layers"] = True
        requests.append(request)
    return requests


def test_concurrent_requests_never_mix_results(server):
    """Each of 96 distinct requests, sent 32 at a time, gets exactly the answer it gets alone."""
    requests = isolation_requests()
    with httpx.Client(base_url=server.base, timeout=120) as client:
        alone = [client.post("/parse", json=request).json() for request in requests]
    batches_before = server.metric("onlstm_batch_requests_count")
    start = Barrier(32)

    def post(index: int) -> dict:
        if index < 32:
            start.wait()  # the first 32 leave together
        return httpx.post(f"{server.base}/parse", json=requests[index], timeout=120).json()

    with ThreadPoolExecutor(max_workers=32) as pool:
        together = list(pool.map(post, range(len(requests))))
    for request, single, concurrent in zip(requests, alone, together):
        assert "results" in concurrent, (request, concurrent)
        assert len(concurrent["results"]) == len(single["results"]), request
        for first, second in zip(single["results"], concurrent["results"]):
            assert second["tokens"] == first["tokens"]
            assert second["tree"] == first["tree"], request
            assert second["spans"] == first["spans"], request
            assert second["layer"] == first["layer"]
            assert second["distances"] == pytest.approx(first["distances"], abs=1e-5)
            assert second["perplexity"] == pytest.approx(first["perplexity"], rel=1e-4)
            assert (second.get("layer_distances") is None) == (first.get("layer_distances") is None)
    model_calls = server.metric("onlstm_batch_requests_count") - batches_before
    assert model_calls < len(requests), "concurrent requests should have shared model calls"
