"""Every answer keeps how long the customer waited for it (Message.latency_ms), and a large-model answer how
long until its first token (first_token_ms), for the manager's console."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone

from chatbot.routing import Incoming, route_many
from chatbot.small.model import get_small_model
from support.conversations import actions
from support.conversations.models import Conversation, LargeJob, Message, Role, Tier
from support.conversations.tasks import answer_with_large_model
from tests.conftest import post_as_server
from tests.conversations.conftest import FakeBackend
from tests.conversations.test_ratings import ROUTINE, chat_socket, frame_of

HARD = "what is the airspeed velocity of an unladen swallow"


@pytest.fixture
def conversation(knowledge_base: None, small_model_dir: object) -> Conversation:
    session = actions.open_session(None)
    return Conversation.objects.get(pk=session.conversation_id)


def backdate(message: Message, seconds: float) -> Message:
    """As if the customer had written it `seconds` ago."""
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_a_small_answer_keeps_the_time_from_the_frame_received_to_the_answer_stored(
    conversation: Conversation, frames: list[dict[str, Any]]
) -> None:
    routed = route_many(get_small_model(), [Incoming(ROUTINE)])[0]
    # The socket received the frame a quarter of a second ago (routing, queueing...).
    received_at = time.monotonic() - 0.25
    actions.post_customer_message(conversation.id, "m1", ROUTINE, routed, received_at=received_at)
    answer = Message.objects.get(tier=Tier.SMALL)
    assert answer.latency_ms is not None and 250 <= answer.latency_ms < 5000
    assert answer.first_token_ms is None
    # The customer's own message has no latency.
    assert Message.objects.get(role=Role.CUSTOMER).latency_ms is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_small_answer_given_on_the_chat_socket_has_its_latency(
    knowledge_base: None, small_model_dir: object
) -> None:
    socket, _ = await chat_socket()
    await socket.send_json_to({"type": "message", "id": "m1", "text": ROUTINE})
    await frame_of(socket, "answer")
    await socket.disconnect()
    answer = await database_sync_to_async(Message.objects.get)(tier=Tier.SMALL)
    assert answer.latency_ms is not None and 0 <= answer.latency_ms < 30_000


@pytest.mark.django_db
def test_a_large_answer_keeps_the_time_to_its_first_token_and_to_the_whole_answer(
    backend: type[FakeBackend], conversation: Conversation, frames: list[dict[str, Any]]
) -> None:
    post_as_server(conversation.id, "q1", HARD)
    question = backdate(Message.objects.get(client_id="q1"), 2)
    # The model takes a moment before each word.
    backend.before_token = staticmethod(lambda: time.sleep(0.05))
    answer_with_large_model.apply(args=[question.id])
    answer = Message.objects.get(tier=Tier.LARGE)
    job = LargeJob.objects.get(pk=question.pk)
    assert job.first_token_at is not None
    # Both count from the customer's message being stored.
    assert answer.first_token_ms == round((job.first_token_at - question.created_at).total_seconds() * 1000)
    assert answer.first_token_ms is not None and answer.latency_ms is not None
    assert 2000 <= answer.first_token_ms < answer.latency_ms < 60_000
    # The other three words came after the first.
    assert answer.latency_ms - answer.first_token_ms >= 150


@pytest.mark.django_db
def test_an_agents_reply_keeps_how_long_the_customer_waited_for_it(
    conversation: Conversation, frames: list[dict[str, Any]], agent: User
) -> None:
    post_as_server(conversation.id, "h1", "I want to speak to a human")
    backdate(Message.objects.get(client_id="h1"), 90)
    reply = actions.post_agent_reply(conversation.id, agent, "Hi, Alex here. How can I help?")
    assert reply.latency_ms is not None and 90_000 <= reply.latency_ms < 100_000
    assert reply.first_token_ms is None


@pytest.mark.django_db
def test_an_agent_answering_a_month_old_message_records_the_most_a_latency_holds(
    knowledge_base: None, agent: User
) -> None:
    conversation = Conversation.objects.create()
    old = Message.objects.create(conversation=conversation, role=Role.CUSTOMER, text="hello?", client_id="o1")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    reply = actions.post_agent_reply(conversation.pk, agent, "Sorry for the wait!")
    reply.refresh_from_db()
    assert reply.latency_ms == actions.MAX_LATENCY_MS == 2**31 - 1
