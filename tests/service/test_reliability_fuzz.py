"""Schemathesis against the running server's /openapi.json: every operation, valid and invalid
requests generated from the schema, at least 500 cases in all.  No response is a 5xx, every
status code, content type and body matches what the schema declares, and invalid requests are
refused with a 4xx (schemathesis' own negative_data_rejection check is replaced by that
rule, because it does not count a 413 from the body-size limit as a refusal)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..helpers import serving

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# generated cases per operation and mode; an operation without inputs has few distinct cases
# and hypothesis stops early on those, so nearly all of the budget goes to POST /parse
EXAMPLES = {
    ("POST /parse", schemathesis.GenerationMode.POSITIVE): 320,
    ("POST /parse", schemathesis.GenerationMode.NEGATIVE): 260,
}
OTHER_OPERATION_EXAMPLES = 10
MINIMUM_CASES = 500


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    # small limits, so that generated requests reach them (413s and 422s from the limits are declared too)
    env = {"ONLSTM_MAX_BODY_BYTES": "20000", "ONLSTM_MAX_SENTENCES": "16", "ONLSTM_MAX_TOKENS_PER_SENTENCE": "40",
           "ONLSTM_MAX_TOKEN_CHARS": "30", "ONLSTM_BATCH_MAX_WAIT_MS": "1"}
    with serving(tiny_checkpoint, tmp_path_factory.mktemp("fuzz") / "server.log", env) as process:
        yield process


def fuzz(operation, mode, base: str, session: requests.Session, cases: Counter, statuses: Counter) -> None:
    """Send the generated cases of one operation in one mode and check every response."""
    examples = EXAMPLES.get((operation.label, mode), OTHER_OPERATION_EXAMPLES)
    negative = mode is schemathesis.GenerationMode.NEGATIVE

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case) -> None:
        response = case.call(base_url=base, session=session, timeout=60)
        cases[operation.label, mode.value] += 1
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if negative:  # a request that violates the schema is refused (a 413 from the body limit counts too)
            assert 400 <= response.status_code < 500, (response.status_code, case.body, response.text[:500])

    call()


def test_every_operation_under_generated_requests(server):
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json", config=schemathesis.Config())
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = sorted(operation.label for operation in operations)
    assert "POST /parse" in labels and "GET /ready" in labels, labels
    cases: Counter = Counter()
    statuses: Counter = Counter()
    session = requests.Session()
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, server.base, session, cases, statuses)
            except Unsatisfiable:
                # nothing in this operation can be made invalid (no parameters, no body)
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    logger.info("fuzzing: %d cases, %s; statuses %s", sum(cases.values()), dict(cases), dict(statuses))
    assert sum(cases.values()) >= MINIMUM_CASES, dict(cases)
    assert cases["POST /parse", "positive"] >= 200 and cases["POST /parse", "negative"] >= 200, dict(cases)
    assert not any(status >= 500 for status in statuses), dict(statuses)
    # the schema cannot say "exactly one of text, sentences, tokens", so most generated bodies are refused
    # with a 422; enough of them must still reach the model for the fuzzing to cover parsing
    assert statuses[200] >= 25, f"too few valid parses among the generated requests: {dict(statuses)}"
    # the server is still healthy and parses normally
    assert httpx.post(f"{server.base}/parse", json={"text": "The cat sat."}, timeout=30).status_code == 200


# --- issue 13's transport classes, generated ------------------------------------------------------

TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~" + "0123456789" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
HOSTILE_CASES = 1500


def request_series(base: str) -> set[tuple[str, str, str]]:
    found = set()
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith("onlstm_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            found.add((labels["route"], labels["method"], labels["status"]))
    return found


def test_generated_methods_paths_and_headers_add_no_series_and_no_log_lines(server):
    """Random methods, paths (any Unicode, control characters included, percent-encoded) and
    headers: never a 5xx, the metric series stay within closed sets and stop growing, and every
    access line stays one line of printable ASCII."""
    statuses: Counter = Counter()
    client = httpx.Client(base_url=server.base, timeout=30)
    methods = st.one_of(st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE"]),
                        st.text(TOKEN_CHARACTERS, min_size=1, max_size=12))
    paths = st.one_of(st.sampled_from(["/parse", "/health", "/model", "/static/app.js", "/ready"]),
                      st.text(min_size=0, max_size=40).map(lambda text: "/" + quote(text, safe="/")))
    headers = st.dictionaries(st.text(TOKEN_CHARACTERS, min_size=1, max_size=10).map(lambda name: "X-" + name),
                              st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
                              max_size=4)

    @settings(max_examples=HOSTILE_CASES, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(method=methods, path=paths, extra=headers)
    def call(method: str, path: str, extra: dict[str, str]) -> None:
        response = client.request(method, path, headers=extra, content=b'{"tokens": [["a"]]}')
        statuses[response.status_code] += 1
        assert response.status_code < 500, (method, path, response.text[:300])

    call()
    first = request_series(server.base)
    call()  # the same cases again, plus /metrics itself: nothing new may appear
    second = request_series(server.base)
    client.close()
    methods_seen = {method for _, method, _ in second}
    print(f"{2 * HOSTILE_CASES} generated requests, statuses {dict(statuses)}; request series {len(first)} then "
          f"{len(second)}; methods {sorted(methods_seen)}")
    assert second - first <= {("/metrics", "GET", "200")}, second - first
    assert methods_seen <= {"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "other"}
    assert len(second) <= 60, len(second)
    time.sleep(0.3)
    access = [line for line in server.log_text().splitlines() if "onlstm.service.access" in line]
    assert len(access) >= 2 * HOSTILE_CASES
    assert all(line.isascii() and line.isprintable() for line in access)
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", line) for line in server.log_text().splitlines()
               if line and not line.startswith(("INFO:", "WARNING:", "ERROR:")))
