"""Issue 13's classes that an in-process app shows (the rest run against real servers in
test_reliability_hostile.py): strict request types, API keys compared on exact bytes, metric
labels from closed sets, escaped log lines, and one behaviour for every kind of bad checkpoint;
plus issue 12's offline docs, favicon, per-layer card and options the model cannot take."""

from __future__ import annotations

import json
import logging
import random
import re
import string
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from onlstm.service.app import create_app
from onlstm.service.metrics import METHODS, STATUSES
from onlstm.service.middleware import flatten_routes
from onlstm.service.settings import load_settings

from ..helpers import BAD_CHECKPOINT_KINDS, make_bad_checkpoint

KEY = "k" * 8 + uuid.uuid4().hex


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").json()["status"] == "loading":
        assert time.monotonic() < deadline, "still loading"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    with TestClient(create_app(load_settings(checkpoint=str(tiny_checkpoint), batch_max_wait_ms=1))) as test_client:
        wait_ready(test_client)
        yield test_client


# --- strict request types (class 7) -----------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"layer": True}, {"layer": False}, {"layer": "1"}, {"layer": 1.0}, {"all_layers": "yes"},
    {"all_layers": 1}, {"all_layers": "true"}, {"decoder": ["greedy"]}, {"punctuation": 1},
])
def test_lax_types_are_refused(client, options):
    response = client.post("/parse", json={"text": "The cat sat.", **options})
    assert response.status_code == 422, (options, response.text)
    assert next(iter(options)) in response.json()["error"]["message"]


def test_declared_types_pass_and_the_schema_says_it_is_strict(client):
    response = client.post("/parse", json={"tokens": [["the", "cat"]], "layer": 0, "all_layers": True})
    assert response.status_code == 200 and response.json()["results"][0]["layer"] == 0
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["ParseRequest"]
    assert request["x-strict"] is True and request["additionalProperties"] is False
    assert "no coercion" in request["description"] and "no coercion" in schema["info"]["description"]


# --- API key: exact bytes after the scheme (class 5) --------------------------------------------


@pytest.mark.parametrize("suffix", ["\u00a0", "\u0085", " ", "\t", "\u2028", "\u3000", "x"])
def test_a_key_with_anything_after_it_is_refused(tiny_checkpoint, suffix):
    settings = load_settings(checkpoint=str(tiny_checkpoint), api_key=KEY)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        body = {"tokens": [["a", "cat"]]}
        assert client.post("/parse", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.post("/parse", json=body, headers={"Authorization": f"bearer {KEY}"}).status_code == 200
        assert client.post("/parse", json=body, headers={"X-API-Key": KEY}).status_code == 200
        for encoding in ("utf-8", "latin-1"):
            try:
                value = (KEY + suffix).encode(encoding)
            except UnicodeEncodeError:
                continue
            for header, prefix in ((b"authorization", b"Bearer "), (b"x-api-key", b"")):
                response = client.post("/parse", json=body, headers={header: prefix + value})
                # the app compares the bytes it gets (over a real connection, h11 has already removed
                # the spaces and tabs that HTTP allows around a header value; nothing else is stripped)
                assert response.status_code == 401, (suffix, encoding, header, response.text)
        assert client.post("/parse", json=body, headers={"Authorization": f"Bearer  {KEY}"}).status_code == 401
        assert client.post("/parse", json=body, headers={"Authorization": f"Basic {KEY}"}).status_code == 401


# --- metric labels from closed sets (class 3) ---------------------------------------------------


def request_series(client: TestClient) -> set[tuple[str, str, str]]:
    series = set()
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("onlstm_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            series.add((labels["route"], labels["method"], labels["status"]))
    return series


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_thousands_of_random_methods_paths_and_headers_keep_the_series_fixed(client):
    generator = random.Random(13)

    def token(length: int) -> str:
        return "".join(generator.choice(string.ascii_uppercase + string.digits) for _ in range(length))

    def send(count: int) -> None:
        for _ in range(count):
            method = generator.choice([token(9), "GET", "POST", "PROPFIND", "X" + token(4)])
            path = generator.choice(["/" + token(6), "/parse/" + token(3), "/static/" + token(5), "/parse", "/health",
                                     "/%0a" + token(3), "/model/" + token(2)])
            headers = {f"X-{token(5)}": token(12), "X-Request-ID": token(70)}
            client.request(method, path, headers=headers)

    send(300)
    request_series(client)  # /metrics itself is one series
    before = request_series(client)
    send(2000)
    after = request_series(client)
    print(f"request series after 300 random requests: {len(before)}; after 2,000 more: {len(after)}")
    assert after == before
    routes = {getattr(route, "path", "") for route in flatten_routes(client.app.routes)} | {"unmatched"}
    for route, method, status in after:
        assert method in METHODS | {"other"}, method
        assert route in routes, route
        assert status in {str(code) for code in STATUSES} | {"2xx", "3xx", "4xx", "5xx"}, status
    histogram = [line for line in client.get("/metrics").text.splitlines()
                 if line.startswith("onlstm_http_request_duration_seconds_count{")]
    assert len(histogram) <= len(routes) + 1, histogram


# --- log lines cannot be forged (class 2) --------------------------------------------------------


def test_request_controlled_fields_are_escaped_in_the_log(client, caplog):
    caplog.set_level(logging.INFO, logger="onlstm.service.access")
    forged = "2026-01-01 00:00:00,000 INFO onlstm.service.access: request FORGED POST /parse -> 200"
    for separator in ("%0a", "%0d", "%0d%0a", "%e2%80%a8", "%1b[2K", "%c2%85"):
        client.get("/x" + separator + forged.replace(" ", "%20"), headers={"X-Request-ID": "ok\u2028id".encode()})
    lines = [record.getMessage() for record in caplog.records if record.name == "onlstm.service.access"]
    assert len(lines) == 6
    for line in lines:
        assert line.isprintable() and line.isascii() and "\n" not in line and "\r" not in line, line
        assert line.startswith("request ") and "-> 404 in" in line, line
        assert "FORGED" in line and "ok\u2028id" not in line  # the bad request id was replaced by a fresh one
    print("escaped access line:", lines[0])


# --- every kind of bad checkpoint: served, /ready 503 with the reason, no Retry-After -------------


@pytest.mark.parametrize("kind", BAD_CHECKPOINT_KINDS)
def test_every_kind_of_bad_checkpoint_is_reported_on_ready_without_retry_after(kind, tiny_checkpoint, tmp_path):
    checkpoint = make_bad_checkpoint(tiny_checkpoint, tmp_path, kind)
    with TestClient(create_app(load_settings(checkpoint=str(checkpoint)))) as client:
        wait_ready(client)
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and "retry-after" not in ready.headers
        assert ready.json()["status"] == "failed" and checkpoint.name in ready.json()["error"], ready.json()
        for response in (client.post("/parse", json={"text": "a cat"}), client.get("/model")):
            assert response.status_code == 503 and "retry-after" not in response.headers
            error = response.json()["error"]
            assert error["code"] == "model_unavailable" and "ONLSTM_CHECKPOINT" in error["message"]
        print(f"{kind}: /ready 503 {ready.json()['error'][:150]}")


# --- issue 12: offline docs, favicon, per-layer card, options the model cannot take ----------------


def test_docs_and_redoc_use_only_assets_this_service_serves(client):
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html.text)
        assert urls and not [url for url in urls if "://" in url or url.startswith("//")], urls
        for asset in assets:
            assert f"/docs-assets/{asset}" in urls, urls
            response = client.get(f"/docs-assets/{asset}")
            assert response.status_code == 200 and len(response.content) > 10_000
    assert client.get("/openapi.json").status_code == 200


def test_favicon_is_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code in (200, 204)
    if response.status_code == 200:
        assert response.headers["content-type"].startswith("image/svg+xml") and b"<svg" in response.content


def test_model_card_lists_the_layers_with_their_dev_f1(tiny_checkpoint, tmp_path):
    from onlstm.models.checkpoint import save_release

    from ..helpers import make_tiny_model

    model, vocab = make_tiny_model()
    path = tmp_path / "with-layers.safetensors"
    save_release(path, model, vocab, {"name": "t", "default_layer": 1, "dev_f1_per_layer": [18.7, 51.0]})
    with TestClient(create_app(load_settings(checkpoint=str(path)))) as client:
        wait_ready(client)
        layers = client.get("/model").json()["layers"]
    assert layers == [{"index": 0, "dev_f1": 18.7, "default": False}, {"index": 1, "dev_f1": 51.0, "default": True},
                      {"index": 2, "dev_f1": None, "default": False}]


def test_card_without_per_layer_f1_gives_null(client):
    layers = client.get("/model").json()["layers"]
    assert [layer["dev_f1"] for layer in layers] == [None, None, None]
    assert [layer["default"] for layer in layers] == [False, True, False]
    json.dumps(layers)
