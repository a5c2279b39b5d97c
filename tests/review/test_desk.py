"""The agent's desk: claim and assign, notes, and what the customer is told when people let go."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from support.conversations import actions, notices
from support.conversations.models import Conversation, Event, Owner
from support.review import actions as review_actions
from support.review.models import Note
from support.review.roles import make_agent
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def escalated(knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]]) -> Conversation:
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "m1", "Can I speak to a human please?")
    return Conversation.objects.get(pk=session.conversation_id)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def system_events(conversation: Conversation) -> list[dict[str, Any]]:
    return [event for event in actions.events_after(conversation.id, 0) if event["type"] == "system"]


def test_an_admin_assigns_a_conversation_and_it_shows_under_the_agent_s_mine(
    escalated: Conversation, agent: User, admin_user: User
) -> None:
    response = logged_in(admin_user).post(f"/review/{escalated.id}/assign/", {"agent": agent.pk}, follow=True)
    assert "Assigned to Alex." in response.content.decode()
    escalated.refresh_from_db()
    assert escalated.owner == Owner.HUMAN and escalated.agent == agent
    mine = logged_in(agent).get("/review/?owner=mine").content.decode()
    assert str(escalated.id) in mine


def test_an_admin_may_take_a_conversation_from_one_agent_to_give_it_to_another(
    escalated: Conversation, agent: User, other_agent: User, admin_user: User
) -> None:
    actions.take_over(escalated.id, agent)
    actions.assign(escalated.id, admin_user, other_agent)
    escalated.refresh_from_db()
    assert escalated.agent == other_agent
    with pytest.raises(actions.ConversationError, match="Another agent"):
        actions.post_agent_reply(escalated.id, agent, "Still mine?")


def test_an_agent_cannot_assign_and_nobody_is_assigned_who_is_not_an_agent(
    escalated: Conversation, agent: User, other_agent: User, admin_user: User, visitor: User
) -> None:
    response = logged_in(agent).post(f"/review/{escalated.id}/assign/", {"agent": other_agent.pk})
    assert response.status_code == 302 and "login" in response["Location"]
    with pytest.raises(actions.ConversationError, match="Only an admin"):
        actions.assign(escalated.id, agent, other_agent)
    with pytest.raises(actions.ConversationError, match="is not an agent"):
        actions.assign(escalated.id, admin_user, visitor)
    response = logged_in(admin_user).post(f"/review/{escalated.id}/assign/", {"agent": "nobody"}, follow=True)
    assert "Choose an agent" in response.content.decode()
    escalated.refresh_from_db()
    assert escalated.agent is None


def test_two_agents_claiming_at_once_leave_one_owner(escalated: Conversation, agent: User, other_agent: User) -> None:
    first = logged_in(agent).post(f"/review/{escalated.id}/take-over/", follow=True).content.decode()
    second = logged_in(other_agent).post(f"/review/{escalated.id}/take-over/", follow=True).content.decode()
    assert "You are handling this conversation" in first
    assert "Another agent is handling this conversation." in second
    escalated.refresh_from_db()
    assert escalated.agent == agent


def test_handing_back_tells_the_customer_they_are_back_with_the_assistant(escalated: Conversation, agent: User) -> None:
    actions.take_over(escalated.id, agent)
    actions.hand_back(escalated.id, agent)
    assert [(e["event"], e["text"]) for e in system_events(escalated)] == [("handed_back", notices.HANDED_BACK)]


def test_closing_tells_the_customer_once_and_writing_again_reopens_it_with_the_bot(
    escalated: Conversation, agent: User
) -> None:
    actions.take_over(escalated.id, agent)
    actions.close(escalated.id, agent)
    actions.close(escalated.id, agent)
    assert [(e["event"], e["text"]) for e in system_events(escalated)] == [("closed", notices.CLOSED)]
    post_as_server(escalated.id, "m2", "How do I reset my password?")
    escalated.refresh_from_db()
    assert escalated.owner == Owner.BOT


def test_marking_a_bot_answered_escalation_as_seen_tells_the_customer_nothing(
    knowledge_base: None, agent: User, frames: list[dict[str, Any]]
) -> None:
    conversation = Conversation.objects.create(escalation_reason="low_confidence", escalation_destination="large")
    Conversation.objects.filter(pk=conversation.pk).update(escalated_at="2026-11-30T00:00:00Z")
    actions.hand_back(conversation.id, agent)
    conversation.refresh_from_db()
    assert conversation.escalated_at is None and conversation.owner == Owner.BOT
    assert system_events(conversation) == []


def test_an_agent_s_note_is_kept_for_agents_and_never_reaches_the_customer(
    escalated: Conversation, agent: User, other_agent: User
) -> None:
    events_before = Event.objects.filter(conversation=escalated).count()
    response = logged_in(agent).post(
        f"/review/{escalated.id}/notes/", {"text": "VIP: refund approved by Dana"}, follow=True
    )
    assert "Note added" in response.content.decode()
    note = Note.objects.get(conversation=escalated)
    assert note.author == agent and note.text == "VIP: refund approved by Dana"
    assert "VIP: refund approved by Dana" in logged_in(other_agent).get(f"/review/{escalated.id}/").content.decode()
    assert Event.objects.filter(conversation=escalated).count() == events_before
    assert all("VIP" not in str(event) for event in actions.events_after(escalated.id, 0))


@pytest.mark.parametrize(
    ("text", "error"), [("   ", "The note is empty."), ("x" * 100_000, "longer than")], ids=["empty", "too long"]
)
def test_a_note_that_is_empty_or_too_long_is_refused(
    escalated: Conversation, agent: User, text: str, error: str
) -> None:
    response = logged_in(agent).post(f"/review/{escalated.id}/notes/", {"text": text}, follow=True)
    assert error in response.content.decode()
    assert not Note.objects.exists()


def test_only_agents_write_notes(escalated: Conversation, visitor: User) -> None:
    with pytest.raises(actions.ConversationError, match="Only agents"):
        review_actions.add_note(escalated.id, visitor, "hello")
    former = make_agent(User.objects.create_user("former"))
    User.objects.filter(pk=former.pk).update(is_active=False)
    with pytest.raises(actions.ConversationError, match="Only agents"):
        review_actions.add_note(escalated.id, User.objects.get(pk=former.pk), "hello")


def test_the_insert_search_finds_canned_replies_and_article_answers_by_every_word(
    knowledge_base: None, agent: User
) -> None:
    from support.review.models import CannedReply

    CannedReply.objects.create(title="Sorry for the wait", text="Sorry you had to wait. Let me check that now.")
    client = logged_in(agent)
    found = client.get("/review/snippets/", {"q": "wait"}).json()["results"]
    assert found[0] == {"kind": "canned", "title": "Sorry for the wait", "text": CannedReply.objects.get().text}
    refund = client.get("/review/snippets/", {"q": "refund timing"}).json()["results"]
    assert refund and all(result["kind"] == "article" for result in refund)
    assert any(result.get("slug") == "refund-timing" for result in refund)
    assert client.get("/review/snippets/", {"q": "refund zebra"}).json()["results"] == []
    # With no words: the canned replies only.
    assert [r["kind"] for r in client.get("/review/snippets/").json()["results"]] == ["canned"]
