"""The HTTP API through FastAPI's TestClient: input forms, the field contract, limits, errors,
readiness, the model card, metrics and the page's files."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nltk import Tree

from onlstm.models.checkpoint import load_release
from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import escape_token, tree_to_spans
from onlstm.service.app import create_app
from onlstm.service.settings import SettingsError, load_settings


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"the service was not ready after {timeout} s: {client.get('/ready').json()}")


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    app = create_app(load_settings(checkpoint=str(tiny_checkpoint), batch_max_wait_ms=1))
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def make_client(tiny_checkpoint):
    """A client for an app with its own settings (and optionally its own model loader)."""
    opened = []

    def make(load_parser=None, wait=True, **overrides):
        overrides.setdefault("checkpoint", str(tiny_checkpoint))
        test_client = TestClient(create_app(load_settings(**overrides), load_parser=load_parser))
        test_client.__enter__()
        opened.append(test_client)
        if wait:
            wait_ready(test_client)
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


def check_result(result: dict, tokens: list[str]) -> None:
    """The field contract of one sentence's result."""
    assert result["tokens"] == tokens
    n = len(tokens)
    tree = Tree.fromstring(result["tree"])
    # the leaves are the tokens, with brackets spelled as in the PTB
    assert tree.leaves() == [escape_token(token) for token in tokens]
    spans = [tuple(span) for span in result["spans"]]
    assert sorted(spans) == sorted(tree_to_spans(tree))
    if n >= 2:  # binary: n - 1 brackets, every node with two children
        assert (0, n) in spans and len(spans) == n - 1
        assert all(len(node) == 2 for node in tree.subtrees())
    assert all(end - start >= 2 and 0 <= start < end <= n for start, end in spans)
    assert len(result["distances"]) == n and all(math.isfinite(value) for value in result["distances"])
    assert isinstance(result["perplexity"], float) and math.isfinite(result["perplexity"]) and result["perplexity"] > 0
    assert flatten(result["nested"]) == tokens
    assert spans_of_nested(result["nested"]) == sorted(spans)


def flatten(nested) -> list[str]:
    return [nested] if isinstance(nested, str) else [leaf for child in nested for leaf in flatten(child)]


def spans_of_nested(nested) -> list[tuple[int, int]]:
    spans = []

    def walk(node, start: int) -> int:
        if isinstance(node, str):
            return start + 1
        end = start
        for child in node:
            end = walk(child, end)
        if end - start >= 2:
            spans.append((start, end))
        return end

    walk(nested, 0)
    return sorted(spans)


# --- the three input forms ---------------------------------------------------------------


def test_text_is_split_tokenized_and_offsets_point_into_it(client):
    text = "The cat sat on the mat.  A dog (a big one) chased it!"
    response = client.post("/parse", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "onlstm-tiny-test", "version": body["model"]["version"]}
    assert len(body["model"]["version"]) == 12
    results = body["results"]
    assert len(results) == 2
    for result in results:
        check_result(result, result["tokens"])
        assert [text[start:end] for start, end in result["offsets"]] == result["tokens"]
        assert result["layer"] == 1
    assert results[0]["tokens"] == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert results[1]["tokens"][:4] == ["A", "dog", "(", "a"]
    assert "-LRB-" in results[1]["tree"] and "-RRB-" in results[1]["tree"]


def test_sentences_are_each_tokenized_with_offsets_in_their_sentence(client):
    sentences = ["Stocks fell 3 % in heavy trading.", "The company said it expects earnings to rise"]
    results = client.post("/parse", json={"sentences": sentences}).json()["results"]
    assert len(results) == 2
    for sentence, result in zip(sentences, results):
        check_result(result, result["tokens"])
        assert [sentence[start:end] for start, end in result["offsets"]] == result["tokens"]
    assert results[0]["tokens"] == ["Stocks", "fell", "3", "%", "in", "heavy", "trading", "."]


def test_tokens_are_used_exactly_as_given(client):
    tokens = [["The", "CAT", "f(x)", "Ünïcödé", "sat", ")"], ["Hello"], ["(", "a", ")"]]
    response = client.post("/parse", json={"tokens": tokens})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for given, result in zip(tokens, results):
        check_result(result, given)
        assert result["offsets"] is None
    assert results[1]["nested"] == "Hello" and results[1]["spans"] == [] and results[1]["tree"] == "(S Hello)"


def test_results_equal_the_parser_library(client, parser):
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "chased", "the", "cat", "."]]
    results = client.post("/parse", json={"tokens": sentences}).json()["results"]
    for tokens, result, expected in zip(sentences, results, parser.parse(sentences)):
        assert result["tokens"] == tokens
        assert result["spans"] == [list(span) for span in expected.spans]
        assert result["distances"] == pytest.approx(expected.distances)
        assert result["perplexity"] == pytest.approx(expected.perplexity)


def test_options_layer_decoder_punctuation_and_all_layers(client, parser):
    tokens = ["the", "company", "said", "it", "expects", "earnings", "to", "rise", "."]
    request = {"tokens": [tokens], "layer": 2, "decoder": "split", "punctuation": "attach", "all_layers": True}
    result = client.post("/parse", json=request).json()["results"][0]
    expected = parser.parse(tokens, layer=2, decoder="split", punctuation="attach")
    check_result(result, tokens)
    assert result["layer"] == 2
    assert result["spans"] == [list(span) for span in expected.spans]
    assert len(result["layer_distances"]) == parser.n_layers
    assert result["layer_distances"][2] == pytest.approx(result["distances"])
    assert len(result["layer_trees"]) == parser.n_layers and result["layer_trees"][2] == result["tree"]
    assert client.post("/parse", json={"tokens": [tokens]}).json()["results"][0]["layer_distances"] is None


def test_the_right_branching_prior_option(client, parser):
    tokens = ["the", "company", "said", "it", "expects", "earnings", "to", "rise", "sharply", "."]
    for bias in (0.4, 1, -0.5, 0):  # a JSON integer is a number too
        result = client.post("/parse", json={"tokens": [tokens], "right_branching_bias": bias}).json()["results"][0]
        expected = parser.parse(tokens, right_branching_bias=bias)
        assert result["spans"] == [list(span) for span in expected.spans]
        assert result["distances"] == pytest.approx(expected.distances)  # the model's own, whatever the prior
    rightmost = client.post("/parse", json={"tokens": [tokens[:-1]], "right_branching_bias": 50}).json()
    assert rightmost["results"][0]["tree"].startswith("(S the (X company (X said")
    assert client.get("/model").json()["default_right_branching_bias"] == parser.default_right_branching_bias


def test_punctuation_model_is_refused_for_a_model_without_punctuation(client):
    response = client.post("/parse", json={"text": "The cat sat.", "punctuation": "model"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsupported_option" and "trained without punctuation" in error["message"]


def test_punctuation_only_sentence_parses(client):
    result = client.post("/parse", json={"text": "... !?"}).json()["results"][0]
    check_result(result, result["tokens"])


PUNCTUATED = ['"Stop!" she said (twice).', "(Really?)", "... and then, well -- nothing.", "!?", "Yes !",
              "'Quoted' [bracketed] {braced} text ;", '" " ( )', "-- dash first", "last ,", "Hello"]
OPTION_GRID = [{}, {"layer": 0}, {"layer": 2, "decoder": "split"}, {"right_branching_bias": 100},
               {"right_branching_bias": -100}, {"right_branching_bias": 0, "decoder": "split", "all_layers": True},
               {"decoder": "greedy", "punctuation": "attach", "right_branching_bias": 0.4},
               {"gate": "input", "layer": 0, "decoder": "split"}]


@pytest.mark.parametrize("options", OPTION_GRID)
def test_every_result_is_a_binary_tree_in_every_mode(client, parser, options):
    """Each input form, decoder, layer and prior, with quotes, brackets, leading and trailing marks
    and marks only: n tokens give n - 1 spans, as the library's."""
    tokenized = [result.tokens for result in parser.parse_many(PUNCTUATED)]
    for form, value in (("text", " ".join(PUNCTUATED)), ("sentences", PUNCTUATED), ("tokens", tokenized)):
        response = client.post("/parse", json={form: value, **options})
        assert response.status_code == 200, (form, response.text)
        for result in response.json()["results"]:
            check_result(result, result["tokens"])
            expected = parser.parse(result["tokens"], **options)
            assert result["spans"] == [list(span) for span in expected.spans], (form, result["tokens"])
            assert (result["layer_trees"] is not None) == bool(options.get("all_layers"))


def test_a_sentence_at_the_token_limit_as_deep_as_it_is_long(client, parser):
    tokens = [f"word{index % 40}" for index in range(250)]  # ONLSTM_MAX_TOKENS_PER_SENTENCE's default
    for bias in (100, -100):
        result = client.post("/parse", json={"tokens": [tokens], "right_branching_bias": bias}).json()["results"][0]
        assert len(result["spans"]) == 249
        assert result["spans"] == [list(span) for span in parser.parse(tokens, right_branching_bias=bias).spans]


def test_requests_differing_only_in_all_layers_share_a_batch(parser):
    from onlstm.models.options import ParseOptions
    from onlstm.service.api.routes.parse import batch_key

    plain, every_layer = batch_key(parser, ParseOptions()), batch_key(parser, ParseOptions(all_layers=True))
    assert plain == every_layer and hash(plain) == hash(every_layer) and plain.resolved
    assert plain == batch_key(parser, ParseOptions(layer=parser.default_layer))  # the defaults, filled in
    assert plain != batch_key(parser, ParseOptions(decoder="split"))


# --- errors: always a JSON error, never a 5xx ----------------------------------------------


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    "body, status, code, message",
    [
        (b'{"text": ', 400, "invalid_json", "the body is not valid JSON"),
        (b"\xff\xfe\x00", 400, "invalid_json", "send UTF-8 encoded JSON"),  # not UTF-8
        (b'{"text": "caf\xe9"}', 400, "invalid_json", "send UTF-8 encoded JSON"),  # latin-1 inside JSON
        (b"[1, 2]", 422, "invalid_request", 'must be a JSON object, such as {"text": "The cat sat."}, not a list'),
        (b'"just a string"', 422, "invalid_request", "not a string"),
        (b"null", 422, "invalid_request", "must be a JSON object"),
        (b"", 422, "invalid_request", "must be a JSON object"),
    ],
)
def test_bad_bodies_are_client_errors(client, body, status, code, message):
    error = assert_error(client.post("/parse", content=body, headers={"Content-Type": "application/json"}), status, code)
    assert message in error["message"] and "Content-Type" not in error["message"]  # JSON was sent as JSON


def test_a_body_sent_without_its_content_type_is_told_to_send_one(client):
    error = assert_error(client.post("/parse", content=b'{"text": "a"}'), 422, "invalid_request")
    assert error["message"] == "the body must be a JSON object; send it with Content-Type: application/json"


def test_flat_tokens_are_shown_the_shape_they_need(client):
    error = assert_error(client.post("/parse", json={"tokens": ["The", "cat"]}), 422, "invalid_request")
    assert 'each a list of token strings: {"tokens": [["The", "cat", "sat"]]}' in error["message"]


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({}, "exactly one"),
        ({"text": "A cat.", "tokens": [["A", "cat"]]}, "exactly one"),
        ({"text": "a", "sentences": ["b"]}, "exactly one"),
        ({"text": "   \n\t "}, "whitespace"),
        ({"text": 5}, "text"),
        ({"text": ["a list"]}, "text"),
        ({"sentences": []}, "sentences"),
        ({"sentences": ["fine", "  "]}, "sentence 2"),
        ({"sentences": "not a list"}, "sentences"),
        ({"tokens": []}, "tokens"),
        ({"tokens": [[]]}, "sentence 1"),
        ({"tokens": [["a", 1]]}, "tokens.0.1"),
        ({"tokens": ["a", "b"]}, "tokens.0"),
        ({"tokens": [["a b"]]}, "whitespace"),
        ({"tokens": [[""]]}, "empty"),
        ({"text": "a", "layer": -1}, "layer"),
        ({"text": "a", "layer": "top"}, "layer"),
        ({"text": "a", "decoder": "cky"}, "decoder"),
        ({"text": "a", "punctuation": "drop"}, "punctuation"),
        ({"text": "a", "right_branching_bias": 101}, "right_branching_bias"),
        ({"text": "a", "right_branching_bias": "0.4"}, "right_branching_bias"),
        ({"text": "a", "right_branching_bias": True}, "right_branching_bias"),
        ({"text": "a", "sentense": "typo"}, "sentense"),
    ],
)
def test_invalid_requests_get_422_saying_what_is_wrong(client, payload, fragment):
    error = assert_error(client.post("/parse", json=payload), 422, "invalid_request")
    assert fragment in error["message"] + json.dumps(error.get("details"))


def test_an_unknown_field_is_named_with_the_field_meant_and_every_field(client):
    error = assert_error(client.post("/parse", json={"txt": "The cat sat."}), 422, "invalid_request")
    assert error["message"].startswith("txt: not a field of a parse request; did you mean 'text'? the fields are text, ")
    assert all(field in error["message"] for field in ("sentences", "tokens", "language", "right_branching_bias"))
    error = assert_error(client.post("/parse", json={"text": "a", "colour": "red"}), 422, "invalid_request")
    assert "did you mean" not in error["message"] and "colour: not a field" in error["message"]


def test_layer_beyond_the_model_is_422(client, parser):
    error = assert_error(client.post("/parse", json={"text": "a cat", "layer": parser.n_layers}), 422, "invalid_layer")
    assert str(parser.n_layers - 1) in error["message"]


def test_non_json_content_type_is_a_client_error(client):
    response = client.post("/parse", content=b'{"text": "a cat"}', headers={"Content-Type": "text/plain"})
    assert "Content-Type: application/json" in assert_error(response, 422)["message"]
    assert_error(client.post("/parse", data={"text": "a cat"}), 422)


def test_unknown_route_and_wrong_method(client):
    assert "/docs" in assert_error(client.get("/nowhere"), 404, "not_found")["message"]
    assert_error(client.get("/parse"), 405, "method_not_allowed")


# --- limits ------------------------------------------------------------------------------


def test_limits_name_the_limit_and_its_value(make_client):
    client = make_client(max_sentences=2, max_tokens_per_sentence=5, max_token_chars=8)
    error = assert_error(client.post("/parse", json={"sentences": ["a", "b", "c"]}), 413, "too_many_sentences")
    assert (error["limit"], error["value"]) == ("max_sentences", 2)
    error = assert_error(client.post("/parse", json={"text": "One. Two. Three."}), 413, "too_many_sentences")
    assert error["value"] == 2
    error = assert_error(client.post("/parse", json={"tokens": [["a"]] * 3}), 413, "too_many_sentences")
    error = assert_error(client.post("/parse", json={"text": "one two three four five six"}), 422, "sentence_too_long")
    assert (error["limit"], error["value"]) == ("max_tokens_per_sentence", 5)
    error = assert_error(client.post("/parse", json={"tokens": [["a", "abcdefghi"]]}), 422, "token_too_long")
    assert (error["limit"], error["value"]) == ("max_token_chars", 8)
    # at the limits exactly, all is well
    ok = client.post("/parse", json={"tokens": [["a", "b", "c", "d", "abcdefgh"], ["x"]]})
    assert ok.status_code == 200, ok.text


def test_body_limit_with_and_without_content_length(make_client):
    client = make_client(max_body_bytes=2048)
    big = json.dumps({"text": "word " * 1000}).encode()
    error = assert_error(client.post("/parse", content=big, headers={"Content-Type": "application/json"}),
                         413, "body_too_large")
    assert (error["limit"], error["value"]) == ("max_body_bytes", 2048)

    def chunked():  # a generator body is sent chunked, with no Content-Length
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    response = client.post("/parse", content=chunked(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "body_too_large")
    small = json.dumps({"text": "the cat sat"}).encode()
    response = client.post("/parse", content=iter([small[:5], small[5:]]), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


# --- readiness ----------------------------------------------------------------------------


def test_ready_is_503_while_loading_then_200(make_client, tiny_checkpoint):
    release = threading.Event()

    def slow_loader(path, settings):
        assert release.wait(30), "the test never released the loader"
        return Parser.load(path)

    client = make_client(load_parser=slow_loader, wait=False)
    try:
        assert client.get("/health").json() == {"status": "ok"}
        response = client.get("/ready")
        assert response.status_code == 503 and response.json()["status"] == "loading"
        assert response.headers["Retry-After"]
        error = assert_error(client.post("/parse", json={"text": "a cat"}), 503, "model_loading")
        assert "loading" in error["message"]
        assert_error(client.get("/model"), 503, "model_loading")
    finally:
        release.set()
    wait_ready(client)
    assert client.get("/ready").json()["model"]["name"] == "onlstm-tiny-test"
    assert client.post("/parse", json={"text": "a cat"}).status_code == 200


def test_broken_checkpoint_keeps_ready_503_with_the_reason(make_client, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"this is not a checkpoint at all")
    client = make_client(checkpoint=str(broken), wait=False)
    deadline = time.monotonic() + 30
    while client.get("/ready").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.02)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "failed" and "broken.safetensors" in response.json()["error"]
    error = assert_error(client.post("/parse", json={"text": "a cat"}), 503, "model_unavailable")
    assert "broken.safetensors" in error["message"]
    assert client.get("/health").status_code == 200


# --- settings ------------------------------------------------------------------------------


def test_bad_settings_fail_with_the_variable_named(monkeypatch, tmp_path):
    monkeypatch.setenv("ONLSTM_PORT", "eighty")
    monkeypatch.setenv("ONLSTM_MAX_SENTENCES", "0")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "ONLSTM_PORT='eighty'" in message and "ONLSTM_MAX_SENTENCES='0'" in message
    monkeypatch.delenv("ONLSTM_PORT")
    monkeypatch.delenv("ONLSTM_MAX_SENTENCES")
    # a missing checkpoint is not a settings error: every bad checkpoint is reported alike, on /ready
    assert load_settings(checkpoint=str(tmp_path / "missing.safetensors")).checkpoint.name == "missing.safetensors"
    with pytest.raises(SettingsError, match="ONLSTM_DEVICE"):
        load_settings(device="tpu")
    with pytest.raises(SettingsError, match="ONLSTM_LOG_LEVEL"):
        load_settings(log_level="loud")


def test_settings_from_environment(monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("ONLSTM_CHECKPOINT", str(tiny_checkpoint))
    monkeypatch.setenv("ONLSTM_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ONLSTM_BATCH_MAX_WAIT_MS", "2.5")
    settings = load_settings()
    assert settings.checkpoint == Path(tiny_checkpoint).resolve()
    assert settings.log_level == "warning" and settings.batch_max_wait_ms == 2.5
    monkeypatch.setenv("ONLSTM_CHECKPOINT", "")
    assert load_settings().checkpoint is None


# --- the other routes ------------------------------------------------------------------------


def test_model_card(client, tiny_checkpoint):
    card = client.get("/model").json()
    release = load_release(tiny_checkpoint)
    assert card["name"] == "onlstm-tiny-test"
    assert card["vocabulary_size"] == len(release.vocab)
    assert card["config"] == release.model.config.to_dict()
    assert card["n_layers"] == 3 and card["default_layer"] == 1 and card["default_decoder"] == "greedy"
    assert card["default_gate"] == "forget"
    assert card["dev_perplexity"] == 123.4 and card["dev_f1"] == 40.0 and card["training_data"] == ["test"]
    assert card["parameters"] == sum(parameter.numel() for parameter in release.model.parameters())
    # the model by name and version: nothing of the server's file system
    assert "path" not in card and str(tiny_checkpoint.parent) not in json.dumps(card)


def test_the_model_card_publishes_the_request_limits_this_service_enforces(make_client):
    client = make_client(max_sentences=3, max_tokens_per_sentence=5, max_body_bytes=4096)
    limits = client.get("/model").json()["limits"]
    assert limits == {"max_body_bytes": 4096, "max_sentences": 3, "max_tokens_per_sentence": 5,
                      "max_token_chars": 1000}
    too_many = client.post("/parse", json={"tokens": [["a"]] * (limits["max_sentences"] + 1)})
    assert (too_many.status_code, too_many.json()["error"]["limit"]) == (413, "max_sentences")
    too_long = client.post("/parse", json={"tokens": [["a"] * (limits["max_tokens_per_sentence"] + 1)]})
    assert too_long.status_code in (413, 422) and too_long.json()["error"]["limit"] == "max_tokens_per_sentence"
    assert client.post("/parse", json={"tokens": [["a"] * 5] * 3}).status_code == 200  # at the limits: taken


def test_metrics_count_requests_sentences_tokens_and_batches(make_client):
    client = make_client()
    client.post("/parse", json={"tokens": [["a", "b", "c"], ["d", "e"]]})
    client.post("/parse", json={"text": ""})
    text = client.get("/metrics").text
    assert 'onlstm_http_requests_total{method="POST",route="/parse",status="200"} 1.0' in text
    assert 'onlstm_http_requests_total{method="POST",route="/parse",status="422"} 1.0' in text
    assert "onlstm_sentences_parsed_total 2.0" in text
    assert "onlstm_tokens_parsed_total 5.0" in text
    assert "onlstm_batch_sentences_count 1.0" in text
    assert 'onlstm_http_request_duration_seconds_count{route="/parse"} 2.0' in text
    assert "onlstm_model_ready 1.0" in text


def test_docs_have_examples(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/parse"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) >= {"text", "sentences", "tokens", "options", "prior"}
    served = {entry["language"] for entry in client.get("/model").json()["languages"]}
    for name, example in body["examples"].items():  # every example is a request the service takes
        answer = client.post("/parse", json=example["value"])
        if example["value"].get("language", "en") in served:
            assert answer.status_code == 200, name
        else:  # this service serves English only: another language's example names what is served
            assert (answer.status_code, answer.json()["error"]["code"]) == (422, "language_unavailable"), name
    assert client.get("/docs").status_code == 200


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "<textarea" in page.text
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    # nothing is fetched from elsewhere
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


def test_the_model_is_loaded_and_run_by_the_parse_thread_only(make_client, tiny_checkpoint):
    """torch's OpenMP threads belong to the first thread that uses them: loading on one thread and
    parsing on another leaves two teams competing for the cores, so both happen on the same one."""
    threads = []

    class RecordingParser(Parser):
        def parse_many(self, *arguments, **options):
            threads.append(threading.current_thread())
            return super().parse_many(*arguments, **options)

    def loader(path, settings):
        threads.append(threading.current_thread())
        return RecordingParser.load(path)

    client = make_client(load_parser=loader)
    for text in ("a cat sat", "the dog ran away", "It rained."):
        assert client.post("/parse", json={"text": text}).status_code == 200
    assert len(threads) >= 4 and len(set(threads)) == 1
    assert threads[0].name.startswith("onlstm-parse")


def test_small_token_requests_are_checked_and_rendered_on_the_event_loop_with_the_same_answers(client):
    tokens = [["The", "cat", "sat", "."], ["It", "rained", "."]]
    small = client.post("/parse", json={"tokens": tokens}).json()
    # the same sentences in a request over the inline bound go through the thread pool
    large = client.post("/parse", json={"tokens": tokens + [["word"] * 200] * 10}).json()
    for alone, batched in zip(small["results"], large["results"][:2]):  # batched: other float rounding
        assert alone["tree"] == batched["tree"] and alone["offsets"] == batched["offsets"]
        assert alone["distances"] == pytest.approx(batched["distances"], abs=1e-5)
        assert alone["perplexity"] == pytest.approx(batched["perplexity"], rel=1e-4)
    error = client.post("/parse", json={"tokens": [["a", "b c"]]})
    assert error.status_code == 422


def test_the_request_s_options_are_parse_options_own_fields():
    """Names, types, bounds and descriptions are written once, in ``ParseOptions``."""
    from onlstm.models.options import ParseOptions
    from onlstm.service.schemas import ParseRequest

    assert issubclass(ParseRequest, ParseOptions)
    for name, field in ParseOptions.model_fields.items():
        assert repr(ParseRequest.model_fields[name]) == repr(field), name
    request = ParseRequest.model_validate({"text": "a", "layer": 1, "right_branching_bias": 0.0})
    assert request.options() == ParseOptions(layer=1, right_branching_bias=0.0)
    assert type(request.options()) is ParseOptions


def test_the_model_card_refuses_a_query_parameter_it_does_not_take(client):
    answer = client.get("/model", params={"lang": "zh"})  # a typo would otherwise give English's card silently
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unknown_parameter" and "'lang'" in error["message"] and "language" in error["message"]
    assert client.get("/model", params={"language": "en"}).status_code == 200
