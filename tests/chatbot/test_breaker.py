"""The large model's circuit breaker, its state in a real Redis shared by every process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatbot.llm.base import LLMError
from chatbot.llm.breaker import BreakerOpen, LargeModelBreaker
from tests.integration.conftest import free_port


@pytest.fixture
def breaker(redis_url: str) -> Iterator[LargeModelBreaker]:
    breaker = LargeModelBreaker(redis_url, failures=2, reset_seconds=1.5, namespace=f"test:{time.monotonic_ns()}")
    yield breaker
    breaker.reset()


class Server:
    """A back end that fails while `down`."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def generate(self) -> str:
        self.calls += 1
        if self.down:
            raise LLMError("connection refused")
        return "an answer"


def test_a_back_end_that_keeps_failing_is_left_alone_then_tried_again(breaker: LargeModelBreaker) -> None:
    server = Server()
    for _ in range(2):
        with pytest.raises(LLMError):
            breaker.call(server.generate)
    assert breaker.is_open()
    with pytest.raises(BreakerOpen):
        breaker.call(server.generate)
    assert server.calls == 2
    # After the pause one call tries it again; it works, and the breaker closes.
    time.sleep(1.6)
    assert not breaker.is_open()
    server.down = False
    assert breaker.call(server.generate) == "an answer"
    assert breaker.call(server.generate) == "an answer" and server.calls == 4


def test_every_process_sees_the_same_breaker(breaker: LargeModelBreaker, redis_url: str) -> None:
    server = Server()
    another_process = LargeModelBreaker(redis_url, failures=2, reset_seconds=1.5, namespace=breaker.namespace)
    with pytest.raises(LLMError):
        breaker.call(server.generate)
    with pytest.raises(LLMError):
        another_process.call(server.generate)
    assert breaker.is_open() and another_process.is_open()


def test_a_success_between_failures_starts_the_count_again(breaker: LargeModelBreaker) -> None:
    server = Server()
    with pytest.raises(LLMError):
        breaker.call(server.generate)
    server.down = False
    breaker.call(server.generate)
    server.down = True
    with pytest.raises(LLMError):
        breaker.call(server.generate)
    assert not breaker.is_open()


def test_errors_other_than_the_back_ends_do_not_count(breaker: LargeModelBreaker) -> None:
    def refused() -> None:
        raise ValueError("the output guard refused the answer")

    for _ in range(3):
        with pytest.raises(ValueError):
            breaker.call(refused)
    assert not breaker.is_open()


def test_without_redis_the_breaker_lets_calls_through() -> None:
    breaker = LargeModelBreaker(f"redis://127.0.0.1:{free_port()}/0", failures=1, reset_seconds=60)
    server = Server()
    for _ in range(3):
        with pytest.raises(LLMError):
            breaker.call(server.generate)
    assert server.calls == 3 and not breaker.is_open()


def test_a_breaker_with_no_failure_limit_is_off(redis_url: str) -> None:
    breaker: Any = LargeModelBreaker(redis_url, failures=0, reset_seconds=60)
    server = Server()
    for _ in range(5):
        with pytest.raises(LLMError):
            breaker.call(server.generate)
    assert not breaker.is_open()
