"""Large-model answers that wait for an agent: sources kept, then sent as written, edited, or rejected."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from support.conversations import actions, notices, prompts
from support.conversations.models import Conversation, Message, Owner, ReviewState, Tier
from support.conversations.tasks import answer_with_large_model
from tests.conftest import post_as_server
from tests.conversations.conftest import FakeBackend

pytestmark = pytest.mark.django_db

QUESTION = "Can I return a sofa my cat scratched?"


@pytest.fixture
def reviewed(settings: Any) -> None:
    settings.TANDEM_REVIEW_LARGE_ANSWERS = [reason for reason in settings.TANDEM_ROUTES]


@pytest.fixture
def question(knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]]) -> Message:
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "q1", QUESTION)
    message = Message.objects.get(client_id="q1")
    assert message.destination == "large", "the question must be one the large model answers"
    return message


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def customer_events(conversation_id: Any) -> list[dict[str, Any]]:
    return actions.events_after(conversation_id, 0)


def test_every_large_model_answer_keeps_the_articles_it_was_given(
    backend: type[FakeBackend], question: Message
) -> None:
    answer_with_large_model.apply(args=[question.id])
    answer = Message.objects.get(tier=Tier.LARGE)
    given = prompts.relevant_articles(question.text, settings.TANDEM_RETRIEVAL_ARTICLES)
    assert answer.sources == [{"slug": a.slug, "title": a.title} for a in given] and answer.sources
    assert answer.delivered and answer.review_state == ""
    sent = [event for event in customer_events(question.conversation_id) if event["type"] == "answer"]
    assert "sources" not in sent[0], "shown to customers only when TANDEM_SHOW_SOURCES is set"


def test_with_sources_shown_the_customer_gets_them_with_the_answer(
    backend: type[FakeBackend], question: Message, settings: Any
) -> None:
    settings.TANDEM_SHOW_SOURCES = True
    answer_with_large_model.apply(args=[question.id])
    sent = [event for event in customer_events(question.conversation_id) if event["type"] == "answer"]
    assert sent[0]["sources"] == Message.objects.get(tier=Tier.LARGE).sources


def test_a_reviewed_answer_waits_for_an_agent_and_nothing_of_it_reaches_the_customer(
    reviewed: None, backend: type[FakeBackend], question: Message, frames: list[dict[str, Any]], agent: User
) -> None:
    escalated = [e for e in customer_events(question.conversation_id) if e["type"] == "escalated"]
    assert escalated[0]["text"] == notices.REVIEWED
    answer_with_large_model.apply(args=[question.id])
    draft = Message.objects.get(tier=Tier.LARGE)
    assert not draft.delivered and draft.review_state == ReviewState.WAITING
    assert not [f for f in frames if f["type"] in ("token", "answer")]
    conversation = Conversation.objects.get(pk=question.conversation_id)
    assert conversation.owner == Owner.PEOPLE and conversation.escalated_at is not None
    page = logged_in(agent).get(f"/review/{conversation.id}/").content.decode()
    assert f'data-draft="{draft.pk}"' in page and draft.sources[0]["title"] in page


@pytest.fixture
def draft(reviewed: None, backend: type[FakeBackend], question: Message) -> Message:
    answer_with_large_model.apply(args=[question.id])
    return Message.objects.get(tier=Tier.LARGE)


def test_sending_a_draft_as_written_delivers_it_in_the_agent_s_name(draft: Message, agent: User) -> None:
    response = logged_in(agent).post(
        f"/review/{draft.conversation_id}/drafts/approve/", {"draft": draft.pk, "text": "ignored"}, follow=True
    )
    assert "The draft was sent to the customer." in response.content.decode()
    draft.refresh_from_db()
    assert draft.delivered and draft.review_state == ReviewState.APPROVED and draft.reviewed_by == agent
    sent = [e for e in customer_events(draft.conversation_id) if e["type"] == "answer"]
    assert [(e["text"], e["tier"], e["agent"]) for e in sent] == [("You can return it.", "large", "Alex")]
    conversation = Conversation.objects.get(pk=draft.conversation_id)
    assert conversation.owner == Owner.HUMAN and conversation.agent == agent and conversation.escalated_at is None


def test_an_edited_draft_goes_out_as_the_agent_s_reply_and_the_draft_is_kept(draft: Message, agent: User) -> None:
    logged_in(agent).post(
        f"/review/{draft.conversation_id}/drafts/send-edited/",
        {"draft": draft.pk, "text": "Yes, within 30 days, scratches included."},
    )
    draft.refresh_from_db()
    assert not draft.delivered and draft.review_state == ReviewState.EDITED
    reply = Message.objects.get(tier=Tier.AGENT)
    assert reply.text == "Yes, within 30 days, scratches included." and reply.reply_to_id == draft.reply_to_id
    sent = [e["text"] for e in customer_events(draft.conversation_id) if e["type"] == "answer"]
    assert sent == ["Yes, within 30 days, scratches included."]


def test_a_rejected_draft_keeps_its_reason_and_the_customer_still_waits_for_people(draft: Message, agent: User) -> None:
    client = logged_in(agent)
    refused = client.post(
        f"/review/{draft.conversation_id}/drafts/reject/", {"draft": draft.pk, "reason": " "}, follow=True
    )
    assert "Say why the draft is rejected." in refused.content.decode()
    client.post(f"/review/{draft.conversation_id}/drafts/reject/", {"draft": draft.pk, "reason": "wrong article"})
    draft.refresh_from_db()
    assert draft.review_state == ReviewState.REJECTED and draft.review_note == "wrong article"
    assert not [e for e in customer_events(draft.conversation_id) if e["type"] == "answer"]
    conversation = Conversation.objects.get(pk=draft.conversation_id)
    assert conversation.owner == Owner.PEOPLE and conversation.escalated_at is not None


def test_a_draft_is_handled_once_and_only_by_the_agent_who_owns_the_conversation(
    draft: Message, agent: User, other_agent: User
) -> None:
    actions.take_over(draft.conversation_id, other_agent)
    with pytest.raises(actions.ConversationError, match="Another agent"):
        actions.approve_draft(draft.conversation_id, draft.pk, agent)
    with pytest.raises(actions.ConversationError, match="Another agent"):
        actions.reject_draft(draft.conversation_id, draft.pk, agent, "no")
    actions.approve_draft(draft.conversation_id, draft.pk, other_agent)
    with pytest.raises(actions.ConversationError, match="approved already"):
        actions.send_edited_draft(draft.conversation_id, draft.pk, other_agent, "again")
    with pytest.raises(actions.ConversationError, match="no such draft"):
        actions.approve_draft(draft.conversation_id, draft.reply_to_id or 0, other_agent)
    assert Message.objects.filter(tier=Tier.AGENT).count() == 0
