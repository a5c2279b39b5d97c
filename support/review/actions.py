"""Writes of the agents' desk (notes), with the staff notices they send on commit. Changes of who owns
a conversation, and anything the customer sees, are in support/conversations/actions.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from support.conversations import broadcast
from support.conversations.actions import ConversationError, agent_name, written_text
from support.conversations.models import Conversation, Message, Owner, Role
from support.knowledge.models import Article
from support.permissions import is_agent
from support.review import checks
from support.review.models import Label, LabelKind, Note, Presence

# An agent whose desk page has not pinged for this long is shown offline (the page pings every 30 s).
PRESENCE_SECONDS = 90


def add_note(conversation_id: uuid.UUID, author: User, text: str) -> Note:
    """An internal note on the conversation, seen by agents only."""
    if not is_agent(author):
        raise ConversationError("not_an_agent", "Only agents write notes.")
    text = written_text(text, "note")
    with transaction.atomic():
        conversation = Conversation.objects.get(pk=conversation_id)
        note = Note.objects.create(conversation=conversation, author=author, text=text)
        transaction.on_commit(lambda: broadcast.send_to_staff({"conversation": str(conversation_id), "change": "note"}))
    return note


def _presence_changed() -> None:
    transaction.on_commit(lambda: broadcast.send_to_staff({"conversation": "presence", "change": "presence"}))


def agent_online(user: User, channel_name: str) -> None:
    """A desk page of `user` opened its staff socket, or pinged: it is online for PRESENCE_SECONDS more."""
    with transaction.atomic():
        was_online = online_agents_query().filter(pk=user.pk).exists()
        Presence.objects.update_or_create(
            channel_name=channel_name, defaults={"user": user, "last_seen": timezone.now()}
        )
        if not was_online:
            _presence_changed()


def agent_offline(channel_name: str) -> None:
    """The page's socket closed."""
    with transaction.atomic():
        deleted, _ = Presence.objects.filter(channel_name=channel_name).delete()
        # Rows that aged out long ago go with it.
        Presence.objects.filter(last_seen__lt=timezone.now() - timedelta(days=1)).delete()
        if deleted:
            _presence_changed()


def online_agents_query() -> Any:
    since = timezone.now() - timedelta(seconds=PRESENCE_SECONDS)
    return User.objects.filter(is_active=True, pk__in=Presence.objects.filter(last_seen__gte=since).values("user"))


def online_agents() -> list[User]:
    """Agents with a desk page open now, by name."""
    return list(online_agents_query().order_by("first_name", "username"))


def label_message(
    message_id: int, agent: User, kind: str, article: str = "", proposed: str = "", *, spot_check: bool = False
) -> Label:
    """Record what a customer's message was about (an article, a new topic, or not a support question),
    given by `agent` now; a message labelled before gets the new label. `spot_check`: given in a check
    of a small-tier answer (the message must be in the sample, support/review/checks.py)."""
    if not is_agent(agent):
        raise ConversationError("not_an_agent", "Only agents label messages.")
    if kind not in LabelKind.values:
        raise ConversationError("unknown_label", "Choose an article, new topic or not a support question.")
    article = article.strip() if kind == LabelKind.ARTICLE else ""
    if kind == LabelKind.ARTICLE and not Article.objects.filter(slug=article).exists():
        raise ConversationError("unknown_article", "Choose the article that answers it.")
    message = Message.objects.filter(pk=message_id, role=Role.CUSTOMER).first()
    if message is None:
        raise ConversationError("no_such_message", "There is no such customer message.")
    if spot_check and not checks.is_sampled(message):
        raise ConversationError("not_a_spot_check", "That message is not one of the small tier's answers to check.")
    with transaction.atomic():
        label, _ = Label.objects.update_or_create(
            message=message,
            defaults={
                "kind": kind,
                "article": article,
                "proposed": proposed if proposed in ("draft", "guess", "answer") else "",
                "spot_check": spot_check,
                "given_by": agent,
                "given_at": timezone.now(),
            },
        )
        conversation_id = message.conversation_id
        transaction.on_commit(
            lambda: broadcast.send_to_staff({"conversation": str(conversation_id), "change": "labelled"})
        )
    return label


def typing_name(conversation_id: uuid.UUID, agent: User) -> str | None:
    """The name the customer sees while `agent` types a reply, or None when the agent may not reply in
    this conversation (another agent owns it, or it is gone)."""
    owner = Conversation.objects.filter(pk=conversation_id).values_list("owner", "agent_id").first()
    if owner is None or not is_agent(agent):
        return None
    if owner[0] == Owner.HUMAN and owner[1] not in (None, agent.pk):
        return None
    return agent_name(agent)
