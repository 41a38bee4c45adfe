"""The micro-batcher on its own, with a fake parse function: batching, isolation, options,
queue timeouts, failures and shutdown; and the API's 503 when the queue is too slow."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from onlstm.models.parser import Parser
from onlstm.service.app import create_app
from onlstm.service.batcher import BatcherUnavailable, MicroBatcher, QueueTimeout, ShuttingDown
from onlstm.service.settings import load_settings


class FakeParse:
    """Answers each item with (key, item); records the batches it saw."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None):
        self.batches: list[tuple[object, list]] = []
        self.delay = delay
        self.gate = gate
        self.entered = threading.Event()  # set once a batch is being parsed

    def __call__(self, items, key):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.delay)
        self.batches.append((key, list(items)))
        return [(key, item) for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


@contextlib.asynccontextmanager
async def started_batcher(parse, **options):
    """A started batcher on a one-thread executor, stopped on the way out."""
    with ThreadPoolExecutor(1) as executor:
        batcher = MicroBatcher(parse, executor, **options)
        batcher.start()
        yield batcher
        await batcher.stop()


def test_concurrent_requests_are_batched_and_get_their_own_results():
    async def scenario():
        fake = FakeParse(delay=0.01)
        async with started_batcher(fake, max_sentences=1000, max_wait=0.2) as batcher:
            requests = [[f"r{index}s{position}" for position in range(index % 4 + 1)] for index in range(30)]
            answers = await asyncio.gather(*(batcher.submit(items, "k") for items in requests))
        return fake, requests, answers

    fake, requests, answers = run(scenario())
    for items, answer in zip(requests, answers):
        assert answer == [("k", item) for item in items]
    assert len(fake.batches) < len(requests)  # requests shared model calls
    assert sum(len(items) for _, items in fake.batches) == sum(len(items) for items in requests)


def test_batches_respect_the_size_bound_and_never_split_a_request():
    async def scenario():
        fake = FakeParse()
        async with started_batcher(fake, max_sentences=5, max_wait=0.05) as batcher:
            requests = [["a", "b", "c"], ["d", "e"], ["f", "g"], ["h"], list("ijklmnop")]
            answers = await asyncio.gather(*(batcher.submit(items, 0) for items in requests))
        return fake, requests, answers

    fake, requests, answers = run(scenario())
    assert [[item for _, item in answer] for answer in answers] == requests
    for _, items in fake.batches:
        # a request larger than the bound goes alone; otherwise batches stay within it
        assert len(items) <= 5 or items == list("ijklmnop")


def test_requests_with_different_options_are_never_mixed():
    async def scenario():
        fake = FakeParse()
        async with started_batcher(fake, max_sentences=100, max_wait=0.05) as batcher:
            keys = [(index % 3, "greedy") for index in range(12)]
            answers = await asyncio.gather(*(batcher.submit([f"x{index}"], key) for index, key in enumerate(keys)))
        return fake, keys, answers

    fake, keys, answers = run(scenario())
    for index, (key, answer) in enumerate(zip(keys, answers)):
        assert answer == [(key, f"x{index}")]
    for key, items in fake.batches:
        assert all(keys[int(item[1:])] == key for item in items)


def test_a_request_waiting_too_long_times_out_and_is_never_parsed():
    async def scenario():
        gate = threading.Event()
        fake = FakeParse(gate=gate)
        async with started_batcher(fake, max_sentences=1, max_wait=0, max_queue_wait=0.2) as batcher:
            first = asyncio.ensure_future(batcher.submit(["first"], 0))
            await asyncio.to_thread(fake.entered.wait, 10)  # the first is now running, blocked on the gate
            with pytest.raises(QueueTimeout) as raised:
                await batcher.submit(["second"], 0)
            assert raised.value.retry_after >= 1
            gate.set()
            assert await first == [(0, "first")]  # running requests are waited for, not dropped
            await asyncio.sleep(0.05)
        return fake

    fake = run(scenario())
    assert [items for _, items in fake.batches] == [["first"]]


def test_a_full_queue_refuses_at_once():
    async def scenario():
        gate = threading.Event()
        fake = FakeParse(gate=gate)
        async with started_batcher(fake, max_sentences=1, max_wait=0, max_queued=2) as batcher:
            running = asyncio.ensure_future(batcher.submit(["running"], 0))
            await asyncio.to_thread(fake.entered.wait, 10)
            queued = [asyncio.ensure_future(batcher.submit([f"q{index}"], 0)) for index in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(BatcherUnavailable, match="busy"):
                await batcher.submit(["one too many"], 0)
            gate.set()
            assert len(await asyncio.gather(running, *queued)) == 3

    run(scenario())


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls = []

    def parse(items, key):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("boom")
        return items

    async def scenario():
        async with started_batcher(parse, max_sentences=1, max_wait=0) as batcher:
            with pytest.raises(ValueError, match="boom"):
                await batcher.submit(["bad"], 0)
            assert await batcher.submit(["good"], 0) == ["good"]

    run(scenario())
    assert calls == [["bad"], ["good"]]


def test_stop_fails_queued_requests_with_a_retry_hint():
    async def scenario():
        gate = threading.Event()
        fake = FakeParse(gate=gate)
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(fake, executor, max_sentences=1, max_wait=0)
            batcher.start()
            running = asyncio.ensure_future(batcher.submit(["running"], 0))
            await asyncio.to_thread(fake.entered.wait, 10)
            waiting = asyncio.ensure_future(batcher.submit(["waiting"], 0))
            await asyncio.sleep(0.01)
            stopping = asyncio.ensure_future(batcher.stop())
            await asyncio.sleep(0.01)
            gate.set()
            await stopping
            assert await running == [(0, "running")]
            with pytest.raises(BatcherUnavailable, match="shutting down"):
                await waiting
            with pytest.raises(BatcherUnavailable):
                await batcher.submit(["late"], 0)

    run(scenario())


def test_drain_parses_what_can_finish_by_the_deadline_and_refuses_the_rest_unparsed():
    async def scenario():
        fake = FakeParse(delay=0.1)  # 0.1 s a batch of one sentence
        async with started_batcher(fake, max_sentences=1) as batcher:
            await batcher.submit(["measured"], 0)  # the model's rate is now known
            submitted = [asyncio.ensure_future(batcher.submit([f"q{index}"], 0)) for index in range(8)]
            await asyncio.to_thread(fake.entered.wait, 10)
            await asyncio.sleep(0.01)
            started = time.monotonic()
            batcher.drain(started + 0.35)  # room for about three of the eight
            with pytest.raises(ShuttingDown):
                await batcher.submit(["new"], 0)
            outcomes = await asyncio.gather(*submitted, return_exceptions=True)
            return outcomes, time.monotonic() - started

    outcomes, seconds = run(scenario())
    parsed = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert all(isinstance(outcome, ShuttingDown) for outcome in outcomes if not isinstance(outcome, list))
    assert 2 <= len(parsed) <= 5, outcomes
    assert parsed == [[(0, f"q{index}")] for index in range(len(parsed))]  # in order: the oldest finish
    assert seconds < 0.8  # refused at once, not after their turn


class GatedParser(Parser):
    """The real tiny parser, but each parse waits for a gate (to hold the model busy)."""

    gate: threading.Event
    entered: threading.Event

    def parse_many(self, *arguments, **options):
        self.entered.set()
        assert self.gate.wait(10)
        return super().parse_many(*arguments, **options)


def test_api_answers_503_with_retry_after_when_the_queue_is_too_slow(tiny_checkpoint):
    gate, entered = threading.Event(), threading.Event()

    def load(path, settings):
        parser = GatedParser.load(path)
        parser.gate, parser.entered = gate, entered
        return parser

    gate.set()  # let the warm-up through
    settings = load_settings(checkpoint=str(tiny_checkpoint), max_queue_wait_s=0.3, batch_max_sentences=1,
                             batch_max_wait_ms=0)
    with TestClient(create_app(settings, load_parser=load)) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        gate.clear()
        entered.clear()
        answers = {}

        def post(name, text):
            answers[name] = client.post("/parse", json={"text": text})

        first = threading.Thread(target=post, args=("first", "the cat sat"))
        first.start()
        assert entered.wait(10)  # the first request now holds the only batch slot
        post("second", "a dog ran")
        gate.set()
        first.join(10)
    assert answers["first"].status_code == 200
    second = answers["second"]
    assert second.status_code == 503 and second.json()["error"]["code"] == "overloaded"
    assert int(second.headers["Retry-After"]) >= 1


def test_under_load_a_batch_refills_to_the_size_of_the_one_before_and_a_lone_client_never_waits():
    async def scenario():
        fake = FakeParse(delay=0.02)
        async with started_batcher(fake, max_sentences=100, refill_wait=0.5) as batcher:
            # three clients answered together come back a little apart: one batch again, not two
            await asyncio.gather(*(batcher.submit([f"a{index}"], 0) for index in range(3)))

            async def client(index: int):
                await asyncio.sleep(0.01 * index)
                return await batcher.submit([f"b{index}"], 0)

            await asyncio.gather(*(client(index) for index in range(3)))
            # a lone client: one request at a time, never held back by the refill wait
            lone = []
            for index in range(4):
                started = time.perf_counter()
                await batcher.submit([f"c{index}"], 0)
                lone.append(time.perf_counter() - started)
        return fake, lone

    fake, lone = run(scenario())
    batches = [items for _, items in fake.batches]
    assert ["b0", "b1", "b2"] in batches, batches
    assert batches[-4:] == [["c0"], ["c1"], ["c2"], ["c3"]]
    assert max(lone[1:]) < 0.25  # the 0.5 s refill wait never applied to the lone client


def test_two_groups_of_clients_out_of_step_are_merged_into_one_batch():
    async def scenario():
        fake = FakeParse(delay=0.05)
        async with started_batcher(fake, max_sentences=100, refill_wait=0.5) as batcher:

            async def client(name: str, start: float):
                await asyncio.sleep(start)
                for round_ in range(3):
                    await batcher.submit([f"{name}{round_}"], 0)

            # group a is parsed first; group b queues while it runs: out of step, a batch of 3 each,
            # until the batch after a's first waits for a's clients to come back beside b's
            await asyncio.gather(*(client(f"a{index}-", 0) for index in range(3)),
                                 *(client(f"b{index}-", 0.02) for index in range(3)))
        return fake

    sizes = [len(items) for _, items in run(scenario()).batches]
    assert sizes[0] == 3 and 6 in sizes, sizes
