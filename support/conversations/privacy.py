"""A customer's data, whole: what `export_conversation` writes and what `erase_conversations` finds.

Conversations are anonymous: a customer is known by the token their browser keeps (one conversation),
or by something they wrote (an e-mail address, an order number) when they ask by other means. Erasing
is an action (`actions.erase_conversations`); everything about a conversation hangs off its row
(messages, large-model drafts, events), so deleting it deletes them all, and a large-model job still
queued for one of its messages finds nothing to do (tasks re-read state by id).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db.models import QuerySet

from support.conversations import actions
from support.conversations.models import Conversation, Message, Role


def conversation_ids(ids: list[str], tokens: list[str], mentioning: list[str]) -> tuple[list[uuid.UUID], list[str]]:
    """The conversations named by id, by customer token, or by text a customer wrote in them; and the
    selectors that matched nothing (or were malformed), to report."""
    found: list[uuid.UUID] = []
    missing: list[str] = []
    for raw in ids:
        try:
            conversation_id = uuid.UUID(raw)
        except ValueError:
            missing.append(f"id {raw!r} (not a conversation id)")
            continue
        if Conversation.objects.filter(pk=conversation_id).exists():
            found.append(conversation_id)
        else:
            missing.append(f"id {raw}")
    for token in tokens:
        named = actions.conversation_for_token(token)
        if named and Conversation.objects.filter(pk=named).exists():
            found.append(named)
        else:
            missing.append("a token (invalid, or its conversation is gone)")
    for text in mentioning:
        matches = _mentioning(text)
        if matches:
            found.extend(matches)
        else:
            missing.append(f"conversations mentioning {text!r}")
    return list(dict.fromkeys(found)), missing


def add_selector_arguments(parser: CommandParser) -> None:
    """The export and erase commands name conversations the same ways."""
    parser.add_argument("ids", nargs="*", help="conversation ids")
    parser.add_argument("--token", action="append", default=[], help="a customer's conversation token")
    parser.add_argument(
        "--mentioning", action="append", default=[], help="every conversation whose customer wrote this text"
    )


def selected(options: dict[str, Any], stderr: OutputWrapper) -> list[uuid.UUID]:
    """The conversations the command's arguments name; what matched nothing is reported on stderr."""
    if not (options["ids"] or options["token"] or options["mentioning"]):
        raise CommandError("Name conversations: ids, --token or --mentioning")
    found, missing = conversation_ids(options["ids"], options["token"], options["mentioning"])
    for what in missing:
        stderr.write(f"Nothing found for {what}")
    if not found:
        raise CommandError("No conversation matched")
    return found


def _mentioning(text: str) -> list[uuid.UUID]:
    messages: QuerySet[Message] = Message.objects.filter(role=Role.CUSTOMER, text__icontains=text)
    return list(messages.values_list("conversation_id", flat=True).distinct())


def export(conversation_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored about one conversation, as JSON-ready data."""
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = conversation.messages.select_related("author", "reply_to").order_by("created_at", "id")
    return {
        "conversation": str(conversation.id),
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "owner": conversation.owner,
        "language": conversation.language,
        "escalation_reason": conversation.escalation_reason,
        "messages": [
            {
                "id": message.id,
                "role": message.role,
                "client_id": message.client_id,
                "text": message.text,
                "created_at": message.created_at.isoformat(),
                "reply_to": message.reply_to_id,
                "tier": message.tier,
                "agent": message.author.get_username() if message.author else None,
                "intent": message.intent,
                "confidence": message.confidence,
                "escalation_reason": message.escalation_reason,
                "destination": message.destination,
                "language": message.language,
                # A large-model draft kept back for agents: never shown to the customer.
                "delivered": message.delivered,
                "model": message.model_name,
                "input_tokens": message.input_tokens,
                "output_tokens": message.output_tokens,
                "cost_usd": str(message.cost_usd),
            }
            for message in messages
        ],
        "events": [event.payload for event in conversation.events.order_by("seq")],
    }
