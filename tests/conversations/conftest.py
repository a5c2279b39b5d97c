"""Fixtures of the conversation tests: a stand-in for the large model's back end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from chatbot.llm import LLMError, reset_backend
from chatbot.llm.base import Generation
from support.conversations.tasks import answer_with_large_model


class FakeBackend:
    """Stands in for a model server: replies with fixed words, or fails a set number of times."""

    model_name = "fake-llm"
    calls: list[list[dict[str, str]]] = []
    failures_left = 0
    before_token: Callable[[], None] = staticmethod(lambda: None)
    words = ["You ", "can ", "return ", "it."]

    def warm_up(self) -> None:
        pass

    def generate(
        self, messages: list[dict[str, str]], *, max_tokens: int, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        FakeBackend.calls.append(messages)
        if FakeBackend.failures_left:
            FakeBackend.failures_left -= 1
            raise LLMError("server unavailable")
        words = FakeBackend.words
        for word in words:
            FakeBackend.before_token()
            if on_token:
                on_token(word)
        return Generation("".join(words), input_tokens=120, output_tokens=len(words), model=self.model_name)


@pytest.fixture
def backend(settings) -> Iterator[type[FakeBackend]]:
    settings.TANDEM_LLM_BACKEND = "tests.conversations.conftest.FakeBackend"
    settings.TANDEM_LLM_OPTIONS = {}
    settings.TANDEM_PRICES = {**settings.TANDEM_PRICES, "fake-llm": {"input": 1.0, "output": 2.0}}
    FakeBackend.calls, FakeBackend.failures_left, FakeBackend.before_token = [], 0, staticmethod(lambda: None)
    FakeBackend.words = ["You ", "can ", "return ", "it."]
    reset_backend()
    yield FakeBackend
    reset_backend()


def retry_now(*, exc: Exception, countdown: float) -> None:
    """Celery's eager retry, without the wait: run the task again with one more retry counted."""
    task = answer_with_large_model
    retries = task.request.retries + 1
    task.apply(args=task.request.args, retries=retries, throw=True)
    raise Retried()


class Retried(Exception):
    pass
