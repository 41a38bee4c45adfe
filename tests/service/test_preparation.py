"""Input preparation in worker processes: the results (Sentences with offsets and the limits),
the CPU budget that replaces a worker stuck on one input, and the limits checked in the worker."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from onlstm.service.errors import APIError
from onlstm.service.preparation import Limits, PreparationPool, cpu_seconds, prepare_text, prepare_tokens

LIMITS = Limits(max_sentences=256, max_tokens_per_sentence=250, max_token_chars=100)


def test_cpu_seconds_counts_this_process():
    before = cpu_seconds(os.getpid())
    if before is None:
        pytest.skip("no /proc here: the budget falls back to wall-clock time")
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.1


def test_text_is_split_in_a_worker_and_an_input_over_budget_replaces_it():
    async def scenario() -> None:
        pool = PreparationPool(workers=1, budget=0.3, max_wait=60)
        await pool.start()
        try:
            text = "The cat sat. The dog ran."
            prepared = await pool.prepare(text, None, LIMITS)
            assert [sentence.tokens for sentence in prepared.sentences] == [
                ("The", "cat", "sat", "."), ("The", "dog", "ran", ".")]
            assert [text[start:end] for start, end in prepared.sentences[1].offsets] == ["The", "dog", "ran", "."]
            (first,) = pool._all
            with pytest.raises(APIError) as caught:
                await pool.prepare("." * 990_000, None, LIMITS)  # far more than 0.3 s of CPU
            assert caught.value.status == 422 and caught.value.code == "input_too_complex"
            assert "ONLSTM_PREPARE_TIMEOUT_S" in caught.value.message
            (replacement,) = pool._all
            assert replacement is not first and not first.process.is_alive()
            again = await pool.prepare(None, ["A dog barked."], LIMITS)  # the new worker serves
            assert again.sentences[0].tokens == ("A", "dog", "barked", ".")
            with pytest.raises(APIError) as caught:  # limits are checked in the worker
                await pool.prepare(None, ["word"] * 300, LIMITS)
            assert caught.value.code == "too_many_sentences" and caught.value.value == 256
        finally:
            pool.stop()

    asyncio.run(scenario())


def test_tokens_are_checked_without_a_worker():
    prepared = prepare_tokens([["a", "b"], ["c"]], LIMITS)
    assert prepared.n_tokens == 3 and prepared.sentences[0].offsets is None
    with pytest.raises(APIError) as caught:
        prepare_tokens([["a" * 101]], LIMITS)
    assert caught.value.code == "token_too_long" and "token 1 of sentence 1 ('aaaaa" in caught.value.message
    assert caught.value.message.endswith("(limit ONLSTM_MAX_TOKEN_CHARS): remove or shorten it")


def test_a_long_url_in_text_is_one_token_within_the_default_limit():
    from onlstm.models.limits import DEFAULT_MAX_TOKEN_CHARS

    url = "https://example.com/" + "/".join(["section-of-a-long-path"] * 7) + "?query=1"
    assert 150 < len(url) < DEFAULT_MAX_TOKEN_CHARS
    defaults = Limits(max_sentences=256, max_tokens_per_sentence=250, max_token_chars=DEFAULT_MAX_TOKEN_CHARS)
    prepared = prepare_text(f"See {url} for details. It is fine.", None, defaults)
    assert url in prepared.sentences[0].tokens and len(prepared.sentences) == 2
