"""The agent review queue, as agents and non-agents see it."""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client

from support.conversations import actions
from support.conversations.models import Conversation, Message, Owner, Tier
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet_broadcasts():
    with (
        mock.patch("support.conversations.broadcast.send_to_conversation"),
        mock.patch("support.conversations.broadcast.send_to_staff"),
        mock.patch("support.conversations.tasks.answer_with_large_model.delay"),
    ):
        yield


@pytest.fixture
def escalated(knowledge_base: None, small_model_dir: object) -> Conversation:
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "m1", "Can I speak to a human please?")
    return Conversation.objects.get(pk=session.conversation_id)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_queue_lists_escalations_for_staff_only(escalated: Conversation, agent: User, visitor: User) -> None:
    page = logged_in(agent).get("/review/")
    assert page.status_code == 200
    assert str(escalated.id) in page.content.decode() and "human_requested" in page.content.decode()
    assert logged_in(visitor).get("/review/").status_code == 302
    assert Client().get("/review/")["Location"].startswith("/accounts/login/")


def test_an_agent_reads_the_transcript_and_replies(escalated: Conversation, agent: User) -> None:
    client = logged_in(agent)
    assert "Can I speak to a human please?" in client.get(f"/review/{escalated.id}/").content.decode()
    response = client.post(f"/review/{escalated.id}/reply/", {"text": "Hello from Alex"})
    assert response.status_code == 302
    reply = Message.objects.get(tier=Tier.AGENT)
    assert reply.text == "Hello from Alex" and reply.author == agent
    escalated.refresh_from_db()
    assert escalated.owner == Owner.HUMAN and escalated.escalated_at is None


def test_a_second_agent_is_told_the_conversation_is_taken(
    escalated: Conversation, agent: User, other_agent: User
) -> None:
    logged_in(agent).post(f"/review/{escalated.id}/take-over/")
    other = logged_in(other_agent)
    response = other.post(f"/review/{escalated.id}/reply/", {"text": "Me too"}, follow=True)
    assert "Another agent is handling this conversation." in response.content.decode()
    assert not Message.objects.filter(author=other_agent).exists()


def test_hand_back_and_close(escalated: Conversation, agent: User) -> None:
    client = logged_in(agent)
    client.post(f"/review/{escalated.id}/take-over/")
    client.post(f"/review/{escalated.id}/hand-back/")
    escalated.refresh_from_db()
    assert escalated.owner == Owner.BOT
    client.post(f"/review/{escalated.id}/close/")
    escalated.refresh_from_db()
    assert escalated.owner == Owner.CLOSED
    assert str(escalated.id) not in client.get("/review/").content.decode()


def test_replies_must_be_posted(escalated: Conversation, agent: User) -> None:
    assert logged_in(agent).get(f"/review/{escalated.id}/reply/").status_code == 405
