"""Every language from one service (issue 25): ONLSTM_LANGUAGES, the request's `language`, the
per-language errors, GET /model's languages and terms, /ready per language, one language per batch,
and the client and `onlstm serve` over real HTTP.

The zh/es releases are the tiny random model with its card's language changed (tests/releases.py):
what is tested is which model parses what, not how well."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from onlstm.client import Client, ServiceError
from onlstm.models.languages import LANGUAGES, WEIGHTS, bundled_languages
from onlstm.models.parser import Parser
from onlstm.service.app import create_app
from onlstm.service.languages import Release, release_plan
from onlstm.service.settings import SettingsError, load_settings

from ..helpers import free_port, running_server
from ..releases import make_release
from .test_app import assert_error, wait_ready

CHINESE = "北京是中国的首都。上海是一个城市。"


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("language-releases")
    return {language: make_release(folder, language) for language in ("en", "zh", "es")}


def served(releases: dict[str, Path], *languages: str) -> str:
    """ONLSTM_LANGUAGES for ``languages`` from the test releases: en=PATH,zh=PATH,..."""
    return ",".join(f"{language}={releases[language]}" for language in languages)


@pytest.fixture(scope="module")
def client(releases):
    app = create_app(load_settings(languages=served(releases, "en", "zh", "es"), batch_max_wait_ms=1))
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


# --- settings ---------------------------------------------------------------------------------


def test_every_bundled_language_is_served_unless_onlstm_languages_says_otherwise(releases, monkeypatch):
    plan = release_plan(load_settings())
    assert [release.language for release in plan] == list(bundled_languages())
    assert all(release.path == WEIGHTS / LANGUAGES[release.language].weights for release in plan)
    monkeypatch.setenv("ONLSTM_LANGUAGES", f" EN , zh={releases['zh']}")
    assert release_plan(load_settings()) == [Release("en", WEIGHTS / "default.safetensors"),
                                             Release("zh", releases["zh"].resolve())]
    checkpoint = load_settings(languages="", checkpoint=str(releases["zh"]))
    assert release_plan(checkpoint) == [Release(None, releases["zh"].resolve())]  # its language: its card's


UNBUNDLED = [language for language in LANGUAGES if language not in bundled_languages()]


@pytest.mark.parametrize("value, fragment", [
    ("en,xx", "unknown language 'xx'"),
    ("english", "unknown language 'english'"),
    pytest.param(",".join(UNBUNDLED[:1]), f"no bundled model for {UNBUNDLED[:1]!r}"[:-1].replace("['", "'"),
                 marks=pytest.mark.skipif(not UNBUNDLED, reason="every language is bundled"), id="unbundled"),
])
def test_an_unknown_or_unbundled_language_stops_the_start_naming_the_bundled_ones(monkeypatch, value, fragment):
    monkeypatch.setenv("ONLSTM_LANGUAGES", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert f"ONLSTM_LANGUAGES={value!r}" in message and fragment in message
    assert f"bundled languages {', '.join(bundled_languages())}" in message or \
        f"bundled languages are {', '.join(bundled_languages())}" in message


def test_one_checkpoint_and_several_languages_are_refused_together(releases):
    with pytest.raises(SettingsError, match="ONLSTM_LANGUAGES: ONLSTM_CHECKPOINT serves one release on its own"):
        load_settings(checkpoint=str(releases["en"]), languages=served(releases, "zh"))


# --- the API ------------------------------------------------------------------------------------


def test_a_release_of_a_language_without_rules_of_its_own_is_served_under_its_code(releases, tmp_path):
    french = make_release(tmp_path, "fr")  # any ISO 639-1 code: a model trained on one's own text
    with TestClient(create_app(load_settings(languages=f"en={releases['en']},fr={french}"))) as client:
        wait_ready(client)
        text = "Le chat dort. « Bonjour », dit-il."
        answer = client.post("/parse", json={"text": text, "language": "fr"})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [result["tokens"] for result in results] == [["Le", "chat", "dort", "."],
                                                            ["«", "Bonjour", "»", ",", "dit-il", "."]]
        assert {result["language"] for result in results} == {"fr"}
        assert all(text[start:end] == token for result in results
                   for token, (start, end) in zip(result["tokens"], result["offsets"]))
        card = client.get("/model", params={"language": "fr"}).json()
        assert card["language_name"] == "French" and [entry["language"] for entry in card["languages"]] == ["en", "fr"]
        error = assert_error(client.post("/parse", json={"text": "Der Hund.", "language": "de"}), 422,
                             "language_unavailable")
        assert error["available"] == ["en", "fr"] and "German" in error["message"]


def test_each_language_is_parsed_by_its_own_model_and_split_as_it_is_written(client):
    chinese = client.post("/parse", json={"text": CHINESE, "language": "zh"})
    assert chinese.status_code == 200, chinese.text
    body = chinese.json()
    assert body["model"]["name"] == "onlstm-tiny-zh"
    assert [result["tokens"] for result in body["results"]] == [["北京", "是", "中国", "的", "首都", "。"],
                                                               ["上海", "是", "一个", "城市", "。"]]
    for result in body["results"]:
        assert result["language"] == "zh" and result["model"] == body["model"]
        assert [CHINESE[start:end] for start, end in result["offsets"]] == result["tokens"]
    spanish = client.post("/parse", json={"sentences": ["El gato duerme."], "language": "es"}).json()
    assert spanish["results"][0]["language"] == "es" and spanish["model"]["name"] == "onlstm-tiny-es"
    english = client.post("/parse", json={"text": "The cat sat."}).json()  # no language: English
    assert english["results"][0]["language"] == "en" and english["model"]["name"] == "onlstm-tiny-en"


@pytest.mark.parametrize("language, code", [("xx", "unknown_language"), ("english", "unknown_language"),
                                            ("EN", "unknown_language"), ("pt", "language_unavailable"),
                                            ("fr", "language_unavailable")])
def test_a_language_not_served_is_422_naming_those_served(client, language, code):
    error = assert_error(client.post("/parse", json={"text": "Olá.", "language": language}), 422, code)
    assert error["available"] == ["en", "zh", "es"]
    assert "en, zh, es" in error["message"]
    assert ("codes are lowercase: 'en'" in error["message"]) == (language == "EN")
    card = client.get("/model", params={"language": language})
    assert card.status_code == 422 and card.json()["error"]["code"] == code


def test_a_language_of_the_wrong_type_is_an_invalid_request(client):
    assert_error(client.post("/parse", json={"text": "a", "language": 7}), 422, "invalid_request")


def test_the_model_card_lists_every_language_with_its_terms(client):
    card = client.get("/model").json()
    assert card["language"] == "en" and card["name"] == "onlstm-tiny-en" and "non-commercial" in card["terms"]
    entries = {entry["language"]: entry for entry in card["languages"]}
    assert list(entries) == ["en", "zh", "es"]
    assert entries["zh"]["model"] == {"name": "onlstm-tiny-zh", "version": entries["zh"]["model"]["version"]}
    assert "non-commercial" in entries["zh"]["terms"] and "CC BY-NC-SA" in entries["zh"]["terms"]
    assert entries["en"]["default"] and not entries["zh"]["default"]
    chinese = client.get("/model", params={"language": "zh"}).json()
    assert chinese["language"] == "zh" and chinese["language_name"] == "Chinese"
    assert chinese["name"] == "onlstm-tiny-zh" and "non-commercial" in chinese["terms"]


def test_ready_gives_every_language_s_state(client):
    readiness = client.get("/ready").json()
    assert readiness["status"] == "ready" and readiness["languages"] == {"en": "ready", "zh": "ready", "es": "ready"}
    assert readiness["model"]["name"] == "onlstm-tiny-en"


def test_ready_waits_for_every_language_and_each_parses_once_loaded(releases):
    gates = {language: threading.Event() for language in ("en", "zh")}

    def load(path, settings):
        language = "zh" if "zh" in path.name else "en"
        assert gates[language].wait(30)
        return Parser.load(path)

    gates["en"].set()
    app = create_app(load_settings(languages=served(releases, "en", "zh")), load_parser=load)
    with TestClient(app) as client:
        try:
            deadline = time.monotonic() + 30
            while client.get("/ready").json()["languages"].get("en") != "ready" and time.monotonic() < deadline:
                time.sleep(0.02)
            readiness = client.get("/ready")
            assert readiness.status_code == 503 and readiness.headers["Retry-After"]
            assert readiness.json()["languages"] == {"en": "ready", "zh": "loading"}
            # (English is not parsed meanwhile: the models load on the thread that parses, see lifecycle.py)
            assert_error(client.post("/parse", json={"text": CHINESE, "language": "zh"}), 503, "model_loading")
        finally:
            gates["zh"].set()
        wait_ready(client)
        assert client.post("/parse", json={"text": CHINESE, "language": "zh"}).status_code == 200
        assert client.post("/parse", json={"text": "The cat sat."}).status_code == 200


def test_a_release_of_another_language_fails_that_language_with_the_reason(releases):
    app = create_app(load_settings(languages=f"en={releases['en']},zh={releases['es']}"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        readiness = client.get("/ready")
        assert readiness.status_code == 503 and "Retry-After" not in readiness.headers
        body = readiness.json()
        assert body["status"] == "failed" and body["languages"] == {"en": "ready", "zh": "failed"}
        assert "is a release of Spanish ('es'), not of Chinese" in body["error"]
        error = assert_error(client.post("/parse", json={"text": CHINESE, "language": "zh"}), 503,
                             "model_unavailable")
        assert "not of Chinese" in error["message"]
        assert client.post("/parse", json={"text": "The cat sat."}).status_code == 200  # English still parses


def test_one_checkpoint_serves_its_own_language_by_default(releases):
    with TestClient(create_app(load_settings(checkpoint=str(releases["zh"])))) as client:
        wait_ready(client)
        assert client.get("/ready").json()["languages"] == {"zh": "ready"}
        result = client.post("/parse", json={"text": "北京是中国的首都。"}).json()["results"][0]
        assert result["language"] == "zh" and result["tokens"][0] == "北京"
        assert_error(client.post("/parse", json={"text": "The cat.", "language": "en"}), 422, "language_unavailable")


def test_a_batch_never_holds_two_languages(releases):
    """Requests of two languages queued together, behind a busy model: each model call parses one
    language, with that language's model, and requests of one language still share a call."""
    calls: list[tuple[str, list[str]]] = []
    busy, entered = threading.Event(), threading.Event()

    class RecordingParser(Parser):
        def parse_many(self, sentences, *arguments, **options):
            entered.set()
            assert busy.wait(30)
            calls.append((self.language, [getattr(sentence, "tokens", sentence)[0] for sentence in sentences]))
            return super().parse_many(sentences, *arguments, **options)

    busy.set()  # the warm-ups go through
    settings = load_settings(languages=served(releases, "en", "zh"), batch_max_wait_ms=0)
    app = create_app(settings, load_parser=lambda path, settings: RecordingParser.load(path))
    with TestClient(app) as client:
        wait_ready(client)
        calls.clear()
        busy.clear()
        entered.clear()
        requests = [("en", "first"), ("zh", "北京"), ("en", "english"), ("zh", "上海"), ("en", "again")]
        with ThreadPoolExecutor(len(requests)) as pool:
            answers = [pool.submit(client.post, "/parse", json={"tokens": [[word, "x"]], "language": language})
                       for language, word in requests[:1]]
            assert entered.wait(30), answers[0].result().text  # the first request holds the model: the others queue
            answers += [pool.submit(client.post, "/parse", json={"tokens": [[word, "x"]], "language": language})
                        for language, word in requests[1:]]
            deadline = time.monotonic() + 30
            while app.state.service.batcher.queued < len(requests) - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            busy.set()
            results = [answer.result(timeout=60).json()["results"][0] for answer in answers]
    assert [(result["language"], result["tokens"][0]) for result in results] == requests
    chinese_words = {"北京", "上海"}
    for language, words in calls:
        assert all((word in chinese_words) == (language == "zh") for word in words), calls
    # (the threads' requests queue in any order)
    assert sorted((language, sorted(words)) for language, words in calls) == \
        [("en", ["again", "english"]), ("en", ["first"]), ("zh", ["上海", "北京"])]


# --- over real HTTP: onlstm serve and the client ----------------------------------------------------


@pytest.fixture(scope="module")
def server(releases, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("language-server") / "server.log"
    command = [sys.executable, "-m", "onlstm", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, port, log, {"ONLSTM_LANGUAGES": served(releases, "en", "zh")}) as base:
        yield base


@pytest.mark.slow
def test_the_client_parses_each_language_and_hears_which_are_served(server):
    with Client(server) as client:
        results = client.parse(text=CHINESE, language="zh")
        assert [result.language for result in results] == ["zh", "zh"]
        assert results[0].tokens[:2] == ["北京", "是"] and results[0].model["name"] == "onlstm-tiny-zh"
        assert client.parse(tokens=[["The", "cat"]])[0].language == "en"
        assert "non-commercial" in client.model("zh")["terms"]
        assert [entry["language"] for entry in client.model()["languages"]] == ["en", "zh"]
        with pytest.raises(ServiceError) as raised:
            client.parse(text="Olá.", language="pt")
    assert raised.value.status == 422 and raised.value.code == "language_unavailable"
    assert raised.value.available == ["en", "zh"]


@pytest.mark.slow
def test_a_chinese_text_larger_than_one_request_is_split_where_chinese_sentences_end(server):
    with Client(server) as client:
        client.limits.max_sentences = 1  # one sentence a request: the client splits the text itself
        results = client.parse(text=CHINESE, language="zh")
    assert [result.tokens[-1] for result in results] == ["。", "。"]
    assert [CHINESE[start:end] for start, end in results[1].offsets][:1] == ["上海"]
