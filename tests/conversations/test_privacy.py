"""A customer's data: exported whole, erased everywhere, and purged after the retention period."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from chatbot.llm.base import Generation
from support.conversations import actions
from support.conversations.models import Conversation, Event, Message, Owner
from support.conversations.tasks import answer_with_large_model, purge_inactive_conversations
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db

EMAIL = "alice.private@example.com"


@pytest.fixture
def customer(knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]]) -> actions.Session:
    """A customer who asked a routine question, then one for a person, and got a large-model draft."""
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "c1", "How do I reset my password?")
    post_as_server(session.conversation_id, "c2", f"I want to talk to a human, my email is {EMAIL}")
    question = Message.objects.get(client_id="c2")
    actions.store_large_answer(question.id, Generation("A draft for the agent.", 10, 5, "fake"))
    return session


def test_an_export_holds_every_message_draft_and_event_of_the_customers_conversation(
    customer: actions.Session,
) -> None:
    out = io.StringIO()
    call_command("export_conversation", "--token", customer.token, stdout=out)
    [exported] = json.loads(out.getvalue())
    assert exported["conversation"] == str(customer.conversation_id)
    texts = [message["text"] for message in exported["messages"]]
    assert texts[0] == "How do I reset my password?" and any(EMAIL in text for text in texts)
    drafts = [message for message in exported["messages"] if not message["delivered"]]
    assert [draft["text"] for draft in drafts] == ["A draft for the agent."]
    assert [event["seq"] for event in exported["events"]] == list(range(1, len(exported["events"]) + 1))


def test_erasing_by_what_the_customer_wrote_removes_everything_and_leaves_others_alone(
    customer: actions.Session,
) -> None:
    other = actions.open_session(None)
    post_as_server(other.conversation_id, "o1", "How do I reset my password?")
    out = io.StringIO()
    call_command("erase_conversations", "--mentioning", EMAIL.upper(), "--yes", stdout=out)
    assert "Erased 1 conversation(s)" in out.getvalue()
    assert not Conversation.objects.filter(pk=customer.conversation_id).exists()
    assert not Message.objects.filter(conversation_id=customer.conversation_id).exists()
    assert not Event.objects.filter(conversation_id=customer.conversation_id).exists()
    assert Message.objects.filter(conversation_id=other.conversation_id).count() == 2


def test_a_large_model_job_queued_for_an_erased_message_does_nothing(customer: actions.Session) -> None:
    question_id = Message.objects.get(client_id="c1").id
    call_command("erase_conversations", str(customer.conversation_id), "--yes", stdout=io.StringIO())
    answer_with_large_model.apply(args=[question_id])
    assert not Message.objects.exists()


def test_erasing_asks_first_and_names_what_matched_nothing(
    customer: actions.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    errors = io.StringIO()
    with pytest.raises(CommandError, match="Nothing erased"):
        call_command("erase_conversations", "--token", customer.token, "--token", "forged", stderr=errors)
    assert "a token (invalid" in errors.getvalue()
    assert Conversation.objects.filter(pk=customer.conversation_id).exists()
    with pytest.raises(CommandError, match="No conversation matched"):
        call_command("erase_conversations", "not-an-id", "--mentioning", "nobody wrote this", stderr=io.StringIO())


def test_conversations_inactive_past_the_retention_period_are_purged(customer: actions.Session, settings: Any) -> None:
    settings.TANDEM_RETENTION_DAYS = 30
    old = Conversation.objects.create(owner=Owner.BOT)
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=31))
    assert purge_inactive_conversations.apply().get() == 1
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert Conversation.objects.filter(pk=customer.conversation_id).exists()
