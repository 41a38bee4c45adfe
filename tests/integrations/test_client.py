"""The Python client against a real ``onlstm serve`` on loopback: typed results equal to the
library's, inputs split under the service's limits, 503 retried, errors with the service's code."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from onlstm import OptionError, ParseOptions, ParseResult
from onlstm.client import AsyncClient, Client, RequestLimits, ServiceError, ServiceUnreachable
from onlstm.models.parser import Parser

from ..helpers import free_port, read_metric, serving

pytestmark = pytest.mark.slow

API_KEY = "integration-test-key-0123"
TEXT = " ".join(
    f"The {animal} sat on the mat in room {index + 10}. A dog chased it." for index, animal in enumerate(["cat", "dog", "cow"])
) + "\n\nStocks fell 3 % in heavy trading."
TOKENS = [f"the cat sat on the mat {'very ' * index}quickly .".split() for index in range(10)]


@pytest.fixture(scope="module")
def service(tiny_checkpoint, tmp_path_factory) -> Iterator[str]:
    """A service with low limits, so that inputs need several requests, and an API key."""
    env = {"ONLSTM_MAX_SENTENCES": "3", "ONLSTM_MAX_BODY_BYTES": "1100", "ONLSTM_MAX_TOKENS_PER_SENTENCE": "30",
           "ONLSTM_API_KEY": API_KEY}
    with serving(tiny_checkpoint, tmp_path_factory.mktemp("client") / "server.log", env) as server:
        yield server.base


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


def assert_same(remote: list[ParseResult], local: list[ParseResult]) -> None:
    assert len(remote) == len(local)
    for mine, theirs in zip(remote, local):
        assert isinstance(mine, ParseResult)
        assert mine.tokens == theirs.tokens
        assert mine.tree == theirs.tree and mine.tree.leaves() == theirs.tokens
        assert mine.spans == theirs.spans
        assert mine.layer == theirs.layer
        assert mine.distances == pytest.approx(theirs.distances, abs=1e-5)
        assert mine.perplexity == pytest.approx(theirs.perplexity, rel=1e-4)
        assert mine.unk_share == pytest.approx(theirs.unk_share, abs=1e-4) and mine.warnings == theirs.warnings
        assert mine.offsets == theirs.offsets


def test_text_over_several_requests_equals_the_library(service, parser):
    with Client(service, api_key=API_KEY) as client:
        results = client.parse(text=TEXT)
        # 7 sentences at most 3 per request: the service's 413 taught the client its limit
        assert client.limits.max_sentences == 3
    assert len(results) == 7
    assert_same(results, parser.parse_text(TEXT))
    assert results[-1].tokens == ["Stocks", "fell", "3", "%", "in", "heavy", "trading", "."]
    # offsets are relative to the whole text, although each request carried a piece of it
    for result in results:
        assert [TEXT[start:end] for start, end in result.offsets] == result.tokens


def test_tokens_and_sentences_keep_their_order_and_options(service, parser):
    with Client(service, api_key=API_KEY) as client:
        results = client.parse(tokens=TOKENS, layer=2, decoder="split", all_layers=True)
        by_sentences = client.parse(sentences=["The cat sat.", "A dog chased the cat into the garden!"])
        with_prior = client.parse(tokens=TOKENS, right_branching_bias=0.7)
    local = parser.parse_many(TOKENS, layer=2, decoder="split")
    assert_same(results, local)
    assert_same(with_prior, parser.parse_many(TOKENS, right_branching_bias=0.7))
    assert all(len(result.layer_distances) == 3 for result in results)
    assert [result.layer_tree(0) for result in results] == [result.layer_tree(0) for result in local]
    assert [result.tokens for result in by_sentences] == [["The", "cat", "sat", "."],
                                                         ["A", "dog", "chased", "the", "cat", "into", "the", "garden", "!"]]


def test_the_body_limit_is_learnt_from_the_413(service, parser):
    # the client believes 256 sentences fit; the service takes 3 sentences and 1,100 bytes per request
    long_tokens = [["internationalization"] * 28 for _ in range(4)]  # 650 bytes each: 2 do not fit
    with Client(service, api_key=API_KEY, limits=RequestLimits(max_sentences=256, max_body_bytes=10**6)) as client:
        results = client.parse(tokens=long_tokens)
        assert client.limits.max_body_bytes <= 1100
    assert_same(results, parser.parse_many(long_tokens))


def _refusals_413(service: str) -> float:
    return read_metric(service, "onlstm_http_requests_total", {"status": "413"}, headers={"x-api-key": API_KEY})


def test_the_limits_published_on_the_model_card_are_adopted_before_the_first_request(service, parser):
    with Client(service, api_key=API_KEY) as client:
        card = client.model()
        assert card["limits"]["max_sentences"] == client.limits.max_sentences == 3
        assert card["limits"]["max_body_bytes"] == client.limits.max_body_bytes == 1100
        refused = _refusals_413(service)
        results = client.parse(text=TEXT)
        assert _refusals_413(service) == refused  # split to fit from the start: no request was refused
    assert_same(results, parser.parse_text(TEXT))


def test_errors_carry_the_service_code_and_message(service):
    with Client(service, api_key=API_KEY) as client:
        with pytest.raises(ServiceError) as invalid_layer:
            client.parse(text="The cat sat.", layer=7)
        with pytest.raises(ServiceError) as too_long:
            client.parse(tokens=[["word"] * 31])
    assert (invalid_layer.value.status, invalid_layer.value.code) == (422, "invalid_layer")
    assert "0 and 2" in invalid_layer.value.message
    assert (too_long.value.code, too_long.value.limit, too_long.value.value) == ("sentence_too_long",
                                                                                "max_tokens_per_sentence", 30)
    with Client(service) as client, pytest.raises(ServiceError) as unauthorized:
        client.parse(text="The cat sat.")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    assert unauthorized.value.request_id


PUNCTUATED = ['"Stop!" she said (twice).', "(Really?)", "... and then, well -- nothing.", "!?", "Yes !",
              "'Quoted' [bracketed] {braced} text ;", '" " ( )', "-- dash first", "last ,"]


@pytest.mark.parametrize("values", [
    {}, {"layer": 0}, {"layer": 2, "decoder": "split"}, {"right_branching_bias": 100}, {"right_branching_bias": -100},
    {"right_branching_bias": 0, "decoder": "split", "all_layers": True}, {"gate": "input", "layer": 0},
])
def test_every_result_is_a_binary_tree_equal_to_the_librarys(service, parser, values):
    with Client(service, api_key=API_KEY) as client:
        by_keywords = client.parse(sentences=PUNCTUATED, **values)
        by_options = client.parse(sentences=PUNCTUATED, options=ParseOptions(**values))
    local = parser.parse_many(PUNCTUATED, **values)
    assert_same(by_keywords, local)
    assert_same(by_options, local)
    for result in by_keywords:
        assert len(result.spans) == max(len(result.tokens) - 1, 0), (values, result.tokens, result.spans)
        if len(result.tokens) > 1:
            assert all(len(node) == 2 for node in result.tree.subtrees()), str(result.tree)


def test_options_over_options_and_the_same_codes_as_the_library():
    # checked before anything is sent: the service here does not exist
    with Client(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        for values, code in [({"layer": -1}, "invalid_layer"), ({"layer": "1"}, "invalid_layer"),
                             ({"decoder": "cky"}, "invalid_decoder"), ({"punctuation": "drop"}, "invalid_punctuation"),
                             ({"right_branching_bias": math.inf}, "invalid_right_branching_bias"),
                             ({"all_layers": "yes"}, "invalid_all_layers"), ({"beam": 3}, "unknown_option")]:
            with pytest.raises(OptionError) as raised:
                client.parse(text="The cat sat.", **values)
            assert raised.value.code == code, values
        with pytest.raises(TypeError, match="ParseOptions"):
            client.parse(text="The cat sat.", options={"layer": 1})


def test_wrong_arguments_and_an_unreachable_service():
    with Client(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(TypeError, match="exactly one of"):
            client.parse(text="a", tokens=[["a"]])
        with pytest.raises(TypeError, match="list of strings"):
            client.parse(sentences="The cat sat.")
        assert client.parse(tokens=[]) == []  # nothing to send, as the library's parse_many([])
        with pytest.raises(ServiceUnreachable, match="cannot reach the service"):
            client.parse(text="The cat sat.")
        assert client.ready() is False


def test_async_client_and_model_card(service, parser):
    async def run() -> tuple[list[list[ParseResult]], dict]:
        async with AsyncClient(service, api_key=API_KEY) as client:
            assert await client.ready()
            batches = await asyncio.gather(*(client.parse(tokens=TOKENS[index:]) for index in range(3)))
            return batches, await client.model()

    batches, card = asyncio.run(run())
    for index, results in enumerate(batches):
        assert_same(results, parser.parse_many(TOKENS[index:]))
    assert card["name"] == "onlstm-tiny-test" and card["n_layers"] == 3


def test_503_is_retried_after_retry_after(tiny_checkpoint, tmp_path):
    # a queue wait of 0.1 s turns a burst of heavy requests into 503 "overloaded" answers
    env = {"ONLSTM_MAX_QUEUE_WAIT_S": "0.1", "ONLSTM_BATCH_MAX_SENTENCES": "100", "ONLSTM_BATCH_MAX_WAIT_MS": "0"}
    heavy = [[f"w{index}"] + ["the", "cat", "sat", "on", "mat"] * 16 for index in range(100)]

    async def burst(base: str, max_retries: int) -> list[list[ParseResult] | BaseException]:
        async with AsyncClient(base, max_retries=max_retries, max_retry_wait=0.5) as client:
            return await asyncio.gather(*(client.parse(tokens=heavy) for _ in range(12)), return_exceptions=True)

    with serving(tiny_checkpoint, tmp_path / "server.log", env) as server:
        without_retries = asyncio.run(burst(server.base, 0))
        refused = [answer for answer in without_retries if isinstance(answer, BaseException)]
        assert refused, "no request was refused: the burst did not overload the service"
        assert all(isinstance(error, ServiceError) and (error.status, error.code) == (503, "overloaded")
                   for error in refused), refused
        refused_before = server.metric("onlstm_http_requests_total", method="POST", route="/parse", status="503")
        with_retries = asyncio.run(burst(server.base, 40))
        assert all(isinstance(answer, list) and len(answer) == 100 for answer in with_retries), with_retries
        retried = server.metric("onlstm_http_requests_total", method="POST", route="/parse", status="503") - refused_before
        assert retried > 0, "the second burst was never refused, so nothing was retried"
        assert all(not math.isnan(result.perplexity) for answer in with_retries for result in answer)


def test_an_answer_deeper_than_pythons_json_reads(tiny_checkpoint, tmp_path):
    """A 1,500-token chain under the strongest prior nests 1,500 lists deep, past json.loads's
    reach: the service writes it and the client reads it back, the same tree as the parser's."""
    env = {"ONLSTM_MAX_TOKENS_PER_SENTENCE": "2000", "ONLSTM_MAX_BODY_BYTES": "100000"}
    tokens = ["the"] * 1500
    local = Parser.load(tiny_checkpoint).parse(tokens, right_branching_bias=100)
    with serving(tiny_checkpoint, tmp_path / "server.log", env) as server:
        with Client(server.base) as client:
            [deep] = client.parse(tokens=[tokens], right_branching_bias=100)
            assert deep.spans == local.spans and len(deep.spans) == 1499
            assert deep.perplexity == pytest.approx(local.perplexity, rel=1e-4)
