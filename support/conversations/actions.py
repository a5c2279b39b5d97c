"""Every write to a conversation, and the events it produces, happens here.

Events are numbered per conversation inside the transaction that stores them and reach sockets only
after that transaction commits, so a widget never sees an event that could still be rolled back, and a
reconnecting widget can fetch from the database exactly what it missed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatbot import costs
from chatbot.llm.base import Generation
from chatbot.policy import Decision, Reason, decide
from chatbot.small.model import ModelNotTrained, Prediction, get_small_model
from support.conversations import broadcast
from support.conversations.models import Conversation, Event, Message, Owner, Role, Tier
from support.knowledge import answers

logger = logging.getLogger(__name__)
_TOKEN_SALT = "tandem.conversation"
# Recorded when the small model cannot run at all (not trained yet): people and the large model take over.
MODEL_UNAVAILABLE = "model_unavailable"
LARGE_MODEL_FAILED = "large_model_failed"


class ConversationError(Exception):
    """An action refused; `code` is stable and shown to clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- sessions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    conversation_id: uuid.UUID
    token: str
    resumed: bool


def make_token(conversation_id: uuid.UUID) -> str:
    return signing.dumps(str(conversation_id), salt=_TOKEN_SALT, compress=True)


def conversation_for_token(token: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(signing.loads(token, salt=_TOKEN_SALT))
    except (signing.BadSignature, ValueError, TypeError):
        return None


def open_session(token: str | None) -> Session:
    """Resume the conversation a valid token names; otherwise start a new one."""
    if token:
        conversation_id = conversation_for_token(token)
        if conversation_id and Conversation.objects.filter(pk=conversation_id).exists():
            return Session(conversation_id, token, resumed=True)
    conversation = Conversation.objects.create()
    return Session(conversation.id, make_token(conversation.id), resumed=False)


def events_after(conversation_id: uuid.UUID, after: int) -> list[dict[str, Any]]:
    return [
        event.payload for event in Event.objects.filter(conversation_id=conversation_id, seq__gt=after).order_by("seq")
    ]


# --- events --------------------------------------------------------------------------------------------


class _Events:
    """The events one transaction stores (the caller holds the conversation's row lock): numbered in
    order, written with one UPDATE of the conversation and one INSERT, and sent on commit to the
    conversation's sockets except `delivered_to` (the channel of a socket that sends them itself)."""

    def __init__(self, conversation: Conversation, delivered_to: str | None = None) -> None:
        self.conversation = conversation
        self.delivered_to = delivered_to
        self.rows: list[Event] = []
        # The conversation's fields to write with the new last_seq.
        self.changed = {"last_seq", "updated_at"}
        self.saved = False

    def add(self, event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
        assert not self.saved, "an event added after save() would be sent but never stored"
        if not self.rows:
            # Registered with the first event, so the events go out before whatever the transaction
            # registers after it (the large model's task, staff notices).
            transaction.on_commit(self._send)
        self.conversation.last_seq += 1
        payload = {"type": event_type, "seq": self.conversation.last_seq, **fields}
        self.rows.append(
            Event(conversation=self.conversation, seq=self.conversation.last_seq, type=event_type, payload=payload)
        )
        return payload

    def change(self, *fields: str) -> None:
        self.changed.update(fields)

    def save(self) -> None:
        self.saved = True
        self.conversation.save(update_fields=sorted(self.changed))
        if not self.rows:
            return
        Event.objects.bulk_create(self.rows)

    def _send(self) -> None:
        payloads = [row.payload for row in self.rows]
        broadcast.send_to_conversation(self.conversation.id, *payloads, skip=self.delivered_to)


def _append_event(
    conversation: Conversation, event_type: str, fields: dict[str, Any], delivered_to: str | None = None
) -> dict[str, Any]:
    """Store one event now (see `_Events`)."""
    events = _Events(conversation, delivered_to)
    payload = events.add(event_type, fields)
    events.save()
    return payload


def _locked(conversation_id: uuid.UUID) -> Conversation:
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def _answer_fields(message: Message) -> dict[str, Any]:
    return {
        "reply_to": message.reply_to.client_id if message.reply_to else None,
        "text": message.text,
        "tier": message.tier,
        "intent": message.intent or None,
        "confidence": message.confidence,
        "agent": _agent_name(message.author) if message.author else None,
    }


def _agent_name(agent: User) -> str:
    return str(getattr(agent, "first_name", "") or agent.get_username())


def _notify_staff(conversation_id: uuid.UUID, change: str) -> None:
    transaction.on_commit(lambda: broadcast.send_to_staff({"conversation": str(conversation_id), "change": change}))


# --- the customer's messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    ack: dict[str, Any]
    duplicate: bool
    # The events this call stored, in order (none for a duplicate). The socket that posted sends them
    # itself at once; every other socket of the conversation gets them through the channel layer.
    events: tuple[dict[str, Any], ...] = ()


def _stored_ack(conversation_id: uuid.UUID, client_id: str) -> dict[str, Any] | None:
    event = Event.objects.filter(conversation_id=conversation_id, type="ack", payload__id=client_id).first()
    return event.payload if event else None


def _classify(text: str) -> Prediction | None:
    try:
        return get_small_model().predict(text)
    except ModelNotTrained:
        logger.error("The small model is not trained: escalating every message")
        return None


class _NotClassified:
    pass


NOT_CLASSIFIED = _NotClassified()


def post_customer_message(
    conversation_id: uuid.UUID,
    client_id: str,
    text: str,
    prediction: Prediction | None | _NotClassified = NOT_CLASSIFIED,
    socket: str | None = None,
) -> Posted:
    """Store a customer's message, then answer it with the small model or escalate it.

    The server classifies in micro-batches beforehand and passes the `prediction` (None: the model
    could not run); other callers let this function classify. A client id already stored for this
    conversation returns the original ack and does nothing else.
    """
    if isinstance(prediction, _NotClassified):
        stored = _stored_ack(conversation_id, client_id)
        if stored is not None:
            return Posted(stored, duplicate=True)
        owner = Conversation.objects.values_list("owner", flat=True).get(pk=conversation_id)
        # Classification runs before the transaction so the write lock is held for milliseconds only;
        # an agent who owns the conversation answers it, so the bot does not even look.
        prediction = _classify(text) if owner != Owner.HUMAN else None

    try:
        return _store_customer_message(conversation_id, client_id, text, prediction, socket)
    except IntegrityError:
        # Sent again (a retry after a lost ack, or the same id racing in on another socket): the unique
        # (conversation, client_id) constraint refused it and the whole transaction rolled back. Checking
        # this way costs nothing on the hot path, where a lookup before every message would.
        stored = _stored_ack(conversation_id, client_id)
        if stored is None:
            raise
        return Posted(stored, duplicate=True)


def _store_customer_message(
    conversation_id: uuid.UUID, client_id: str, text: str, prediction: Prediction | None, socket: str | None
) -> Posted:
    # The hot path of every routine answer: one SELECT, two INSERTs of messages, one UPDATE of the
    # conversation and one INSERT of both events (the article's answer comes from a cache).
    with transaction.atomic():
        conversation = _locked(conversation_id)
        events = _Events(conversation, socket)
        if conversation.owner == Owner.HUMAN:
            # The agent who owns the conversation answers it; the bot's opinion is not recorded.
            Message.objects.create(conversation=conversation, role=Role.CUSTOMER, client_id=client_id, text=text)
            ack = events.add("ack", {"id": client_id, "text": text})
            events.save()
            _notify_staff(conversation.id, "customer_message")
            return Posted(ack, duplicate=False, events=(ack,))
        if conversation.owner == Owner.CLOSED:
            conversation.owner = Owner.BOT
            events.change("owner")

        answer_text, reason = _route(text, prediction)
        message = Message.objects.create(
            conversation=conversation,
            role=Role.CUSTOMER,
            client_id=client_id,
            text=text,
            intent=prediction.intent if prediction else "",
            confidence=prediction.confidence if prediction else None,
            escalation_reason=reason or "",
        )
        ack = events.add("ack", {"id": client_id, "text": text})
        if reason is not None:
            reply = _escalate(conversation, message, reason, events)
        else:
            assert prediction is not None and answer_text is not None
            reply = _answer_small(conversation, message, prediction, answer_text, events)
        events.save()
        return Posted(ack, duplicate=False, events=(ack, reply))


def _route(text: str, prediction: Prediction | None) -> tuple[str | None, str | None]:
    """(the article's answer, None) when the small tier answers; (None, the escalation reason) otherwise."""
    if prediction is None:
        return None, MODEL_UNAVAILABLE
    decision: Decision = decide(text, prediction)
    if not decision.answer:
        assert decision.reason is not None
        return None, decision.reason.value
    answer = answers.answer_for(prediction.intent)
    if answer is None:
        # The model was trained on an article since deleted: not an answer we can give.
        return None, Reason.OUT_OF_SCOPE.value
    return answer, None


def _answer_small(
    conversation: Conversation, message: Message, prediction: Prediction, text: str, events: _Events
) -> dict[str, Any]:
    model = settings.TANDEM_SMALL_MODEL_NAME
    answer = Message.objects.create(
        conversation=conversation,
        role=Role.BOT,
        tier=Tier.SMALL,
        reply_to=message,
        text=text,
        intent=prediction.intent,
        confidence=prediction.confidence,
        model_name=model,
        input_tokens=prediction.input_tokens,
        cost_usd=costs.cost_usd(model, prediction.input_tokens, 0),
    )
    return events.add("answer", _answer_fields(answer))


def _escalate(conversation: Conversation, message: Message, reason: str, events: _Events) -> dict[str, Any]:
    """Hand the customer's (stored) message to the large model and the agents; the caller saves `events`."""
    conversation.owner = Owner.PENDING
    conversation.escalated_at = timezone.now()
    conversation.escalation_reason = reason
    events.change("owner", "escalated_at", "escalation_reason")
    event = events.add("escalated", {"reply_to": message.client_id, "reason": reason})
    _notify_staff(conversation.id, "escalated")

    from chatbot.tasks import answer_with_large_model

    message_id = message.id
    transaction.on_commit(lambda: answer_with_large_model.delay(message_id))
    return event


# --- the large model ------------------------------------------------------------------------------------


def pending_large_answer(message_id: int) -> Message | None:
    """The customer message still waiting for the large model, or None if there is nothing to do."""
    message = Message.objects.select_related("conversation").filter(pk=message_id, role=Role.CUSTOMER).first()
    if message is None or Message.objects.filter(reply_to=message, tier=Tier.LARGE).exists():
        return None
    return message


def bot_may_reply(conversation_id: uuid.UUID) -> bool:
    """False once an agent owns the conversation: only the owner speaks to the customer."""
    return not Conversation.objects.filter(pk=conversation_id, owner=Owner.HUMAN).exists()


def store_large_answer(message_id: int, generation: Generation) -> Message | None:
    """Store the large model's answer once. Sent to the customer unless an agent has taken over, in
    which case it stays a draft for the agent. Returns None when an answer was already stored."""
    with transaction.atomic():
        message = Message.objects.select_related("conversation").get(pk=message_id)
        conversation = _locked(message.conversation_id)
        if Message.objects.filter(reply_to=message, tier=Tier.LARGE).exists():
            return None
        deliver = conversation.owner != Owner.HUMAN
        answer = Message.objects.create(
            conversation=conversation,
            role=Role.BOT,
            tier=Tier.LARGE,
            reply_to=message,
            text=generation.text,
            model_name=generation.model,
            input_tokens=generation.input_tokens,
            output_tokens=generation.output_tokens,
            cost_usd=costs.cost_usd(generation.model, generation.input_tokens, generation.output_tokens),
            delivered=deliver,
        )
        if deliver:
            _append_event(conversation, "answer", _answer_fields(answer))
            if conversation.owner == Owner.PENDING:
                conversation.owner = Owner.BOT
                conversation.save(update_fields=["owner", "updated_at"])
        _notify_staff(conversation.id, "draft" if not deliver else "large_answer")
        return answer


def large_answer_failed(message_id: int, error: str) -> None:
    """The large model gave up for good: say so, and leave the conversation to the agents."""
    with transaction.atomic():
        message = Message.objects.get(pk=message_id)
        conversation = _locked(message.conversation_id)
        logger.error("Large model failed for message %s: %s", message_id, error)
        conversation.escalated_at = conversation.escalated_at or timezone.now()
        conversation.escalation_reason = LARGE_MODEL_FAILED
        conversation.save(update_fields=["escalated_at", "escalation_reason", "updated_at"])
        _append_event(conversation, "escalated", {"reply_to": message.client_id, "reason": LARGE_MODEL_FAILED})
        _notify_staff(conversation.id, "escalated")


# --- agents ---------------------------------------------------------------------------------------------------


def take_over(conversation_id: uuid.UUID, agent: User) -> Conversation:
    """Make the agent the owner. Refused when another agent owns the conversation."""
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.owner == Owner.HUMAN and conversation.agent_id not in (None, agent.pk):
            raise ConversationError("owned_by_another_agent", "Another agent is handling this conversation.")
        if conversation.owner != Owner.HUMAN or conversation.agent_id != agent.pk:
            conversation.owner = Owner.HUMAN
            conversation.agent_id = agent.pk
            conversation.save(update_fields=["owner", "agent", "updated_at"])
            _notify_staff(conversation.id, "taken_over")
        return conversation


def post_agent_reply(conversation_id: uuid.UUID, agent: User, text: str) -> Message:
    text = text.strip()
    if not text:
        raise ConversationError("empty_text", "The reply is empty.")
    with transaction.atomic():
        conversation = take_over(conversation_id, agent)
        conversation = _locked(conversation_id)
        last_customer = conversation.messages.filter(role=Role.CUSTOMER).order_by("-created_at", "-id").first()
        reply = Message.objects.create(
            conversation=conversation,
            role=Role.AGENT,
            tier=Tier.AGENT,
            author=agent,
            reply_to=last_customer,
            text=text,
        )
        conversation.escalated_at = None
        conversation.save(update_fields=["escalated_at", "updated_at"])
        _append_event(conversation, "answer", _answer_fields(reply))
        _notify_staff(conversation.id, "agent_reply")
        return reply


def _release(conversation_id: uuid.UUID, agent: User, owner: Owner, change: str) -> Conversation:
    """End the agent's ownership (and any pending escalation): to the bot again, or closed."""
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.owner == Owner.HUMAN and conversation.agent_id != agent.pk:
            raise ConversationError("owned_by_another_agent", "Another agent is handling this conversation.")
        conversation.owner = owner
        conversation.agent = None
        conversation.escalated_at = None
        conversation.save(update_fields=["owner", "agent", "escalated_at", "updated_at"])
        _notify_staff(conversation.id, change)
        return conversation


def hand_back(conversation_id: uuid.UUID, agent: User) -> Conversation:
    """The agent is done: the bot answers again."""
    return _release(conversation_id, agent, Owner.BOT, "handed_back")


def close(conversation_id: uuid.UUID, agent: User) -> Conversation:
    return _release(conversation_id, agent, Owner.CLOSED, "closed")
