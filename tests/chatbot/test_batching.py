"""Concurrent routings share batches, and each caller gets its own verdict."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from chatbot.policy import Reply, Route
from chatbot.routes import Destination
from chatbot.routing import Incoming, Routed
from chatbot.small import batching


def answered(text: str) -> Routed:
    return Routed(Route(Destination.SMALL, None, (Reply(f"intent-of-{text}", 0.9),)), None, "en", None, 3)


def fake_route_many(batches: list[list[str]]):  # type: ignore[no-untyped-def]
    def route_many(messages: list[Incoming]) -> list[Routed]:
        batches.append([message.text for message in messages])
        time.sleep(0.01)  # like a forward pass: later arrivals queue up meanwhile
        return [answered(message.text) for message in messages]

    return route_many


def test_concurrent_requests_are_batched_and_answered_in_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []
    monkeypatch.setattr(batching, "_route_many", fake_route_many(batches))

    async def scenario() -> list[Routed]:
        batcher = batching.MicroBatcher(max_batch=8, max_wait=0.005)
        return await asyncio.gather(*(batcher.route(Incoming(f"q{i}")) for i in range(20)))

    results = asyncio.run(scenario())
    assert [r.route.replies[0].intent for r in results] == [f"intent-of-q{i}" for i in range(20)]
    assert sorted(text for batch in batches for text in batch) == sorted(f"q{i}" for i in range(20))
    assert max(len(batch) for batch in batches) == 8
    assert len(batches) <= 4


def test_when_the_encoder_fails_every_waiting_caller_hears_and_the_next_batch_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = {"now": True}

    def flaky(messages: list[Incoming]) -> list[Routed]:
        if broken["now"]:
            raise RuntimeError("encoder crashed")
        return [answered("ok") for _ in messages]

    monkeypatch.setattr(batching, "_route_many", flaky)

    async def scenario() -> tuple[list[Routed | BaseException], Routed]:
        batcher = batching.MicroBatcher(max_batch=8, max_wait=0.01)
        first = await asyncio.gather(*(batcher.route(Incoming(str(i))) for i in range(3)), return_exceptions=True)
        broken["now"] = False
        return first, await batcher.route(Incoming("again"))

    first, again = asyncio.run(scenario())
    assert all(isinstance(result, RuntimeError) for result in first)
    assert again.route.replies[0].intent == "intent-of-ok"


def test_one_message_the_model_cannot_read_fails_only_its_own_caller(small_model_dir: Path) -> None:
    # A lone surrogate is valid JSON but not text: the real tokenizer refuses it. The protocol refuses
    # such frames before they get here; this is the batcher's own guard for whatever else may fail.
    texts = ["How do I reset my password?", "hello \ud800 there", "Where is my parcel?"]

    async def scenario() -> list[Routed | BaseException]:
        batcher = batching.MicroBatcher(max_batch=8, max_wait=0.05)
        return await asyncio.gather(*(batcher.route(Incoming(text)) for text in texts), return_exceptions=True)

    first, bad, third = asyncio.run(scenario())
    assert isinstance(bad, Exception)
    assert isinstance(first, Routed) and isinstance(third, Routed)
    assert first.prediction is not None and first.prediction.intent == "reset-password"
