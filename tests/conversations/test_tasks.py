"""The large-model task: streaming, storing once, retries, and staying quiet once an agent owns the chat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from chatbot.llm import LLMError, reset_backend
from chatbot.llm.base import Generation
from support.conversations import actions, prompts
from support.conversations.models import Message, Tier
from support.conversations.tasks import answer_with_large_model
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db


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
    settings.TANDEM_LLM_BACKEND = "tests.conversations.test_tasks.FakeBackend"
    settings.TANDEM_LLM_OPTIONS = {}
    settings.TANDEM_PRICES = {**settings.TANDEM_PRICES, "fake-llm": {"input": 1.0, "output": 2.0}}
    FakeBackend.calls, FakeBackend.failures_left, FakeBackend.before_token = [], 0, staticmethod(lambda: None)
    FakeBackend.words = ["You ", "can ", "return ", "it."]
    reset_backend()
    yield FakeBackend
    reset_backend()


@pytest.fixture
def escalated_message(knowledge_base: None, small_model_dir: object, frames: list) -> Message:
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "q1", "Can I return a sofa my cat scratched?")
    return Message.objects.get(client_id="q1")


def test_the_answer_is_grounded_streamed_and_stored_with_its_cost(
    backend: type[FakeBackend], escalated_message: Message, frames: list[dict[str, Any]]
) -> None:
    answer_with_large_model.apply(args=[escalated_message.id])
    prompt = backend.calls[0]
    assert prompt[0]["role"] == "system" and "Knowledge base:" in prompt[0]["content"]
    # Grounded on the articles nearest the question (damaged items, warranty, returns ...).
    nearest = prompts.relevant_articles(escalated_message.text, settings.TANDEM_RETRIEVAL_ARTICLES)
    assert len(nearest) == settings.TANDEM_RETRIEVAL_ARTICLES
    assert all(article.answer in prompt[0]["content"] for article in nearest)
    assert prompt[-1] == {"role": "user", "content": "Can I return a sofa my cat scratched?"}
    # Streamed (the output guard holds back the last few words until the answer is checked whole).
    assert "".join(f["text"] for f in frames if f["type"] == "token") == "You can return it."
    answer = Message.objects.get(tier=Tier.LARGE)
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("You can return it.", 120, 4)
    assert float(answer.cost_usd) == pytest.approx((120 * 1.0 + 4 * 2.0) / 1e6)


def test_a_redelivered_task_does_nothing(backend: type[FakeBackend], escalated_message: Message) -> None:
    answer_with_large_model.apply(args=[escalated_message.id])
    answer_with_large_model.apply(args=[escalated_message.id])
    assert len(backend.calls) == 1
    assert Message.objects.filter(tier=Tier.LARGE).count() == 1


def test_a_failing_model_is_retried(backend: type[FakeBackend], escalated_message: Message) -> None:
    backend.failures_left = 2
    with mock.patch("support.conversations.tasks.answer_with_large_model.retry", side_effect=_retry_now):
        answer_with_large_model.apply(args=[escalated_message.id])
    assert len(backend.calls) == 3
    assert Message.objects.filter(tier=Tier.LARGE).count() == 1


def test_a_model_that_keeps_failing_hands_the_question_to_agents(
    backend: type[FakeBackend], escalated_message: Message
) -> None:
    backend.failures_left = 99
    with mock.patch("support.conversations.tasks.answer_with_large_model.retry", side_effect=_retry_now):
        answer_with_large_model.apply(args=[escalated_message.id])
    assert len(backend.calls) == 4  # the first try and three retries
    last = actions.events_after(escalated_message.conversation_id, 0)[-1]
    assert last["type"] == "escalated" and last["reason"] == "large_model_failed"
    assert not Message.objects.filter(tier=Tier.LARGE).exists()


def test_once_an_agent_takes_over_the_customer_stops_receiving_tokens(
    backend: type[FakeBackend], escalated_message: Message, frames: list[dict[str, Any]], agent: User, monkeypatch
) -> None:
    monkeypatch.setattr("support.conversations.tasks.OWNER_CHECK_SECONDS", 0.0)
    taken: list[bool] = []

    sentence = "You can return it within thirty days if it is unused and boxed."
    backend.words = [f"{word} " for word in sentence.split(" ")]
    whole = "".join(backend.words)

    def streamed() -> str:
        return "".join(f["text"] for f in frames if f["type"] == "token")

    def take_over_once_something_was_streamed() -> None:
        if streamed() and not taken:
            actions.take_over(escalated_message.conversation_id, agent)
            taken.append(True)

    backend.before_token = staticmethod(take_over_once_something_was_streamed)
    answer_with_large_model.apply(args=[escalated_message.id])
    assert taken and whole.startswith(streamed()) and len(streamed()) < len(whole) / 2
    draft = Message.objects.get(tier=Tier.LARGE)
    assert draft.text == whole and not draft.delivered
    assert not [f for f in frames if f["type"] == "answer" and f["tier"] == "large"]


def _retry_now(*, exc: Exception, countdown: float) -> None:
    """Celery's eager retry, without the wait: run the task again with one more retry counted."""
    task = answer_with_large_model
    retries = task.request.retries + 1
    task.apply(args=task.request.args, retries=retries, throw=True)
    raise _Retried()


class _Retried(Exception):
    pass


def test_the_large_model_is_told_to_answer_in_the_customers_language(
    backend: type[FakeBackend], knowledge_base: None, small_model_dir: object, frames: list
) -> None:
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "f1", "Bonjour, je voudrais changer l'adresse de livraison de ma commande")
    message = Message.objects.get(client_id="f1")
    assert (message.escalation_reason, message.language) == ("language", "fr")
    answer_with_large_model.apply(args=[message.id])
    assert "answer in French" in backend.calls[0][0]["content"]


def test_the_prompt_always_gets_its_articles_even_when_small_talk_is_nearest(
    knowledge_base: None, small_model_dir: object
) -> None:
    # "hello" is nearest the built-in greeting, which has no article: the prompt still gets three.
    articles = prompts.relevant_articles("hello, can you help me", settings.TANDEM_RETRIEVAL_ARTICLES)
    assert len(articles) == settings.TANDEM_RETRIEVAL_ARTICLES


def test_a_conversation_left_waiting_for_a_large_answer_that_never_came_goes_to_people(
    knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]], django_capture_on_commit_callbacks
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from chatbot.policy import Thresholds
    from chatbot.routing import unavailable
    from support.conversations.models import Conversation, Owner
    from support.conversations.tasks import STUCK_AFTER_SECONDS, sweep_stuck_escalations

    stuck, recent = actions.open_session(None), actions.open_session(None)
    # Escalated to the large model, whose job was then lost (nothing queued it: the fixture drops it).
    actions.post_customer_message(stuck.conversation_id, "s1", "A hard question", unavailable(Thresholds.current()))
    actions.post_customer_message(recent.conversation_id, "r1", "Another one", unavailable(Thresholds.current()))
    long_ago = timezone.now() - timedelta(seconds=STUCK_AFTER_SECONDS + 5)
    Message.objects.filter(client_id="s1").update(created_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_stuck_escalations.apply().get() == 1
    assert Conversation.objects.get(pk=stuck.conversation_id).owner == Owner.PEOPLE
    assert Conversation.objects.get(pk=recent.conversation_id).owner == Owner.PENDING
    told = [frame for frame in frames if frame["type"] == "escalated" and frame["reply_to"] == "s1"]
    assert [frame["reason"] for frame in told] == ["large_model_failed"]
    # Swept once: nothing is left waiting for it.
    assert sweep_stuck_escalations.apply().get() == 0
