"""The large-model task: streaming, storing once, retries, and staying quiet once an agent owns the chat."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from support.conversations import actions, prompts
from support.conversations.models import Message, Tier
from support.conversations.tasks import answer_with_large_model
from tests.conftest import post_as_server
from tests.conversations.conftest import FakeBackend, retry_now

pytestmark = pytest.mark.django_db


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
    with mock.patch("support.conversations.tasks.answer_with_large_model.retry", side_effect=retry_now):
        answer_with_large_model.apply(args=[escalated_message.id])
    assert len(backend.calls) == 3
    assert Message.objects.filter(tier=Tier.LARGE).count() == 1


def test_a_model_that_keeps_failing_hands_the_question_to_agents(
    backend: type[FakeBackend], escalated_message: Message
) -> None:
    backend.failures_left = 99
    with mock.patch("support.conversations.tasks.answer_with_large_model.retry", side_effect=retry_now):
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
