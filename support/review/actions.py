"""Writes of the agents' desk (notes), with the staff notices they send on commit. Changes of who owns
a conversation, and anything the customer sees, are in support/conversations/actions.py."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from support.conversations import broadcast
from support.conversations.actions import ConversationError
from support.conversations.models import Conversation
from support.permissions import is_agent
from support.review.models import Note


def add_note(conversation_id: uuid.UUID, author: User, text: str) -> Note:
    """An internal note on the conversation, seen by agents only."""
    if not is_agent(author):
        raise ConversationError("not_an_agent", "Only agents write notes.")
    text = text.strip()
    if not text:
        raise ConversationError("empty_text", "The note is empty.")
    if len(text) > settings.TANDEM_MAX_MESSAGE_CHARS:
        raise ConversationError(
            "text_too_long", f"The note is longer than {settings.TANDEM_MAX_MESSAGE_CHARS} characters."
        )
    with transaction.atomic():
        conversation = Conversation.objects.get(pk=conversation_id)
        note = Note.objects.create(conversation=conversation, author=author, text=text)
        transaction.on_commit(lambda: broadcast.send_to_staff({"conversation": str(conversation_id), "change": "note"}))
    return note
