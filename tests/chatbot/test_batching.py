"""Concurrent classifications share batches, and each caller gets its own answer."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatbot.small import batching
from chatbot.small.model import Prediction


def fake_predict_many(batches: list[list[str]]):  # type: ignore[no-untyped-def]
    def predict_many(texts: list[str]) -> list[Prediction]:
        batches.append(texts)
        time.sleep(0.01)  # like a forward pass: later arrivals queue up meanwhile
        return [
            Prediction(intent=f"intent-of-{text}", confidence=0.9, similarity=0.8, input_tokens=3) for text in texts
        ]

    return predict_many


def test_concurrent_requests_are_batched_and_answered_in_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []
    monkeypatch.setattr(batching, "_predict_many", fake_predict_many(batches))

    async def scenario() -> list[Prediction]:
        batcher = batching.MicroBatcher(max_batch=8, max_wait=0.005)
        return await asyncio.gather(*(batcher.predict(f"q{i}") for i in range(20)))

    results = asyncio.run(scenario())
    assert [r.intent for r in results] == [f"intent-of-q{i}" for i in range(20)]
    assert sorted(text for batch in batches for text in batch) == sorted(f"q{i}" for i in range(20))
    assert max(len(batch) for batch in batches) == 8
    assert len(batches) <= 4


def test_a_failing_batch_fails_every_waiting_caller_and_the_next_batch_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"n": 0}

    def flaky(texts: list[str]) -> list[Prediction]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("encoder crashed")
        return [Prediction("ok", 1.0, 1.0, 1) for _ in texts]

    monkeypatch.setattr(batching, "_predict_many", flaky)

    async def scenario() -> tuple[list[Prediction | BaseException], Prediction]:
        batcher = batching.MicroBatcher(max_batch=8, max_wait=0.01)
        first = await asyncio.gather(*(batcher.predict(str(i)) for i in range(3)), return_exceptions=True)
        return first, await batcher.predict("again")

    first, again = asyncio.run(scenario())
    assert all(isinstance(result, RuntimeError) for result in first)
    assert again.intent == "ok"
