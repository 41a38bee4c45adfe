"""Deployment settings: the optional API key on /parse, CORS off unless configured, and request
logs with an id, the status and the timing but never the text unless ONLSTM_LOG_REQUEST_TEXT."""

from __future__ import annotations

import logging
import re
import socket
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from onlstm.service.app import create_app
from onlstm.service.settings import SettingsError, load_settings

from ..helpers import serving

KEY = "k" * 8 + uuid.uuid4().hex
ORIGIN = "https://parser.example.org"


@pytest.mark.slow
def test_api_key_cors_and_request_logs_on_a_real_server(tiny_checkpoint, tmp_path):
    env = {"ONLSTM_API_KEY": KEY, "ONLSTM_CORS_ORIGINS": f"{ORIGIN}, http://localhost:3000",
           "ONLSTM_KEEP_ALIVE_S": "1.5"}
    secret_word = f"zebracorn{uuid.uuid4().hex[:8]}"
    with serving(tiny_checkpoint, tmp_path / "server.log", env) as server:
        parse = f"{server.base}/parse"
        body = {"text": f"The {secret_word} sat on the mat."}
        missing = httpx.post(parse, json=body)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        assert "X-API-Key" in missing.json()["error"]["message"] and missing.headers["www-authenticate"] == "Bearer"
        wrong = httpx.post(parse, json=body, headers={"X-API-Key": KEY[:-1] + "x"})
        assert wrong.status_code == 401 and KEY not in wrong.text
        by_header = httpx.post(parse, json=body, headers={"X-API-Key": KEY, "X-Request-ID": "trace-42"})
        assert by_header.status_code == 200 and by_header.headers["x-request-id"] == "trace-42"
        assert httpx.post(parse, json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        for open_path in ("/health", "/ready", "/model", "/metrics", "/"):  # only /parse is protected
            assert httpx.get(server.base + open_path).status_code == 200, open_path
        # CORS: the configured origin may call from a browser, another may not
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key"}
        allowed = httpx.options(parse, headers={"Origin": ORIGIN, **preflight})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
        refused = httpx.options(parse, headers={"Origin": "https://evil.example", **preflight})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        simple = httpx.post(parse, json=body, headers={"Origin": ORIGIN, "X-API-Key": KEY})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        # the keep-alive setting reaches uvicorn: an idle connection is kept 1.5 s, then closed
        host, port = server.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            answers = connection.makefile("rb")
            for pause in (0.3, 0.3):
                time.sleep(pause)
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert answers.readline().startswith(b"HTTP/1.1 200")
                headers = list(iter(answers.readline, b"\r\n"))
                length = next(int(line.split(b":")[1]) for line in headers if line.lower().startswith(b"content-length"))
                assert answers.read(length) == b'{"status":"ok"}'
            time.sleep(2.5)
            assert answers.read(1) == b"", "the idle connection should have been closed"
        time.sleep(0.2)  # let the log lines reach the file
        log = server.log_text()
    lines = [line for line in log.splitlines() if "onlstm.service.access" in line]
    assert any(re.search(r"request trace-42 POST /parse -> 200 in \d+\.\d ms", line) for line in lines), lines
    assert any(re.search(r"request [0-9a-f]{32} POST /parse -> 401 in", line) for line in lines), lines
    assert secret_word not in log, "the text of a request reached the log"
    assert KEY not in log, "the API key reached the log"


def test_cors_is_off_unless_configured(tiny_checkpoint):
    with TestClient(create_app(load_settings(checkpoint=str(tiny_checkpoint)))) as client:
        response = client.options("/parse", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": ORIGIN}).headers


def test_the_text_is_logged_only_when_the_setting_says_so(tiny_checkpoint, caplog):
    caplog.set_level(logging.INFO, logger="onlstm.service.access")
    for log_text in (False, True):
        caplog.clear()
        settings = load_settings(checkpoint=str(tiny_checkpoint), log_request_text=log_text)
        with TestClient(create_app(settings)) as client:
            client.post("/parse", json={"text": "The quokka sat."})  # 503 or 200: logged either way
        lines = [record.getMessage() for record in caplog.records if record.name == "onlstm.service.access"]
        assert any("POST /parse ->" in line for line in lines), lines
        assert any("quokka" in line for line in lines) == log_text, lines


def test_idle_connections_outlive_the_clients_own_expiry():
    """The server closing an idle keep-alive connection just as a client reuses it drops that
    request; clients expire idle connections after 5 s (httpx) to 60 s (load balancers), so the
    server waits longer and the client always closes first."""
    assert load_settings().keep_alive_s > 60 > httpx.Limits().keepalive_expiry


def test_a_bad_api_key_setting_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("ONLSTM_API_KEY", "short-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "ONLSTM_API_KEY" in str(caught.value) and "16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)
    monkeypatch.setenv("ONLSTM_API_KEY", "")
    assert load_settings().api_key is None
    with pytest.raises(SettingsError, match="not an origin"):
        load_settings(cors_origins="parser.example.org/path")
