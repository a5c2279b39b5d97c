"""Every write to a conversation, and the events it produces, happens here.

Events are numbered per conversation inside the transaction that stores them and reach sockets only
after that transaction commits, so a widget never sees an event that could still be rolled back, and a
reconnecting widget can fetch from the database exactly what it missed.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from chatbot import costs
from chatbot.llm.base import Generation
from chatbot.llm.breaker import get_breaker
from chatbot.routes import Destination, Reason
from chatbot.routing import Routed
from support.conversations import broadcast, notices
from support.conversations.models import (
    PEOPLE_OWNERS,
    UNFINISHED_JOB_STATES,
    Conversation,
    Event,
    JobState,
    LargeJob,
    Message,
    Owner,
    Rating,
    ReviewState,
    Role,
    Tier,
)
from support.conversations.protocol import rated_frame
from support.knowledge import answers
from support.permissions import is_admin, is_agent

logger = logging.getLogger(__name__)
_TOKEN_SALT = "tandem.conversation"


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
    """The conversation a token names, if its signature is good and it is younger than
    TANDEM_TOKEN_MAX_AGE_DAYS (SignatureExpired is a BadSignature)."""
    try:
        return uuid.UUID(
            signing.loads(token, salt=_TOKEN_SALT, max_age=timedelta(days=settings.TANDEM_TOKEN_MAX_AGE_DAYS))
        )
    except (signing.BadSignature, ValueError, TypeError):
        return None


def open_session(token: str | None) -> Session:
    """Resume the conversation a valid token names, with a fresh token (so a token in use never expires);
    otherwise start a new one."""
    if token:
        conversation_id = conversation_for_token(token)
        if conversation_id and Conversation.objects.filter(pk=conversation_id).exists():
            return Session(conversation_id, make_token(conversation_id), resumed=True)
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
        "agent": agent_name(message.author) if message.author else None,
        **({"sources": message.sources} if settings.TANDEM_SHOW_SOURCES and message.sources else {}),
    }


def agent_name(agent: User) -> str:
    """The name customers see for an agent."""
    return str(getattr(agent, "first_name", "") or agent.get_username())


def _notify_staff(conversation_id: uuid.UUID, change: str) -> None:
    transaction.on_commit(lambda: broadcast.send_to_staff({"conversation": str(conversation_id), "change": change}))


# --- the customer's messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingContext:
    """What the router needs to know about a conversation before a message is classified."""

    # False while people own it: the message waits for them and is not classified at all.
    bot_answers: bool
    # The customer's language so far (a short message does not change it on its own).
    language: str | None


def routing_context(conversation_id: uuid.UUID) -> RoutingContext:
    owner, language = Conversation.objects.values_list("owner", "language").get(pk=conversation_id)
    return RoutingContext(owner not in PEOPLE_OWNERS, language or None)


@dataclass(frozen=True)
class Posted:
    ack: dict[str, Any]
    duplicate: bool
    # The events this call stored, in order (none for a duplicate). The socket that posted sends them
    # itself at once; every other socket of the conversation gets them through the channel layer.
    events: tuple[dict[str, Any], ...] = ()
    # Nothing was stored: people handed the conversation back to the bot after the caller looked, so
    # the message must be routed first (chatbot.routing) and posted again.
    needs_routing: bool = False


def _stored_ack(conversation_id: uuid.UUID, client_id: str) -> dict[str, Any] | None:
    event = Event.objects.filter(conversation_id=conversation_id, type="ack", payload__id=client_id).first()
    return event.payload if event else None


def post_customer_message(
    conversation_id: uuid.UUID,
    client_id: str,
    text: str,
    routed: Routed | None,
    socket: str | None = None,
    large_allowed: bool = True,
    received_at: float | None = None,
) -> Posted:
    """Store a customer's message and act on its route: the small tier's answers, or an escalation.

    `routed` is the router's verdict (chatbot.routing.route_many, run by the caller outside any
    transaction: the server does it in micro-batches), or None when `routing_context` said people own
    the conversation and the message was not classified. `large_allowed` False: flood control refused
    the client another large-model job, so a question for the large model goes to people. A client id
    already stored for this conversation returns the original ack and does nothing else. `received_at`:
    when the chat socket received the frame (time.monotonic() in this process), from which the small
    tier's answers measure their latency (Message.latency_ms).
    """
    try:
        return _store_customer_message(conversation_id, client_id, text, routed, socket, large_allowed, received_at)
    except IntegrityError:
        # Sent again (a retry after a lost ack, or the same id racing in on another socket): the unique
        # (conversation, client_id) constraint refused it and the whole transaction rolled back. Checking
        # this way costs nothing on the hot path, where a lookup before every message would.
        stored = _stored_ack(conversation_id, client_id)
        if stored is None:
            raise
        return Posted(stored, duplicate=True)


def _store_customer_message(
    conversation_id: uuid.UUID,
    client_id: str,
    text: str,
    routed: Routed | None,
    socket: str | None,
    large_allowed: bool,
    received_at: float | None,
) -> Posted:
    # The hot path of every routine answer: one SELECT, two INSERTs of messages, one UPDATE of the
    # conversation and one INSERT of both events (the article's answer comes from a cache).
    with transaction.atomic():
        conversation = _locked(conversation_id)
        events = _Events(conversation, socket)
        if conversation.with_people:
            # People answer it; the bot's opinion is neither asked nor recorded.
            Message.objects.create(conversation=conversation, role=Role.CUSTOMER, client_id=client_id, text=text)
            ack = events.add("ack", {"id": client_id, "text": text})
            events.save()
            _notify_staff(conversation.id, "customer_message")
            return Posted(ack, duplicate=False, events=(ack,))
        if routed is None:
            return Posted({}, duplicate=False, needs_routing=True)
        if conversation.owner == Owner.CLOSED:
            conversation.owner = Owner.BOT
            events.change("owner")
        if routed.guess is not None and routed.guess.reliable and routed.language != conversation.language:
            conversation.language = routed.language or ""
            events.change("language")

        route = routed.route
        replies = _small_replies(routed) if route.answer else None
        reason = route.reason
        destination = route.destination
        if route.answer and replies is None:
            # The model was trained on an article since deleted: not an answer we can give.
            reason = Reason.OUT_OF_SCOPE
            destination = settings.TANDEM_ROUTES[reason]
        if destination == Destination.LARGE and (not large_allowed or over_large_model_budget(conversation)):
            reason, destination = Reason.ESCALATION_LIMIT, Destination.PEOPLE
        elif destination == Destination.LARGE and get_breaker().is_open():
            reason, destination = Reason.LARGE_MODEL_UNAVAILABLE, Destination.PEOPLE
        prediction = routed.prediction
        message = Message.objects.create(
            conversation=conversation,
            role=Role.CUSTOMER,
            client_id=client_id,
            text=text,
            intent=prediction.intent if prediction else "",
            confidence=prediction.confidence if prediction else None,
            escalation_reason=reason or "",
            destination=destination,
            language=routed.language or "",
        )
        ack = events.add("ack", {"id": client_id, "text": text})
        if replies is not None:
            stored = tuple(_answer_small(conversation, message, replies, routed.input_tokens, events, received_at))
        else:
            assert reason is not None
            stored = (_escalate(conversation, message, reason, destination, events),)
        events.save()
        return Posted(ack, duplicate=False, events=(ack, *stored))


def over_large_model_budget(conversation: Conversation) -> bool:
    """Flood control for the large model: this conversation has started its share of large-model jobs
    within the window, or too many conversations wait for the large model already."""
    since = timezone.now() - timedelta(seconds=settings.TANDEM_LIMIT_ESCALATION_WINDOW)
    started = Message.objects.filter(
        conversation=conversation, role=Role.CUSTOMER, destination=Destination.LARGE, created_at__gte=since
    ).count()
    if started >= settings.TANDEM_LIMIT_CONVERSATION_ESCALATIONS:
        return True
    waiting = Conversation.objects.filter(owner=Owner.PENDING).exclude(pk=conversation.pk).count()
    return waiting >= settings.TANDEM_LIMIT_QUEUED_LARGE


def _small_replies(routed: Routed) -> list[tuple[str, float, str]] | None:
    """(intent, confidence, answer text) for each part the small tier answers; None if one has no answer."""
    replies = []
    for reply in routed.route.replies:
        text = answers.answer_for(reply.intent)
        if text is None:
            return None
        replies.append((reply.intent, reply.confidence, text))
    return replies


def _answer_small(
    conversation: Conversation,
    message: Message,
    replies: list[tuple[str, float, str]],
    input_tokens: int,
    events: _Events,
    received_at: float | None,
) -> list[dict[str, Any]]:
    """One answer per part, in order; the encoder's tokens (and so the cost) are counted on the first."""
    model = settings.TANDEM_SMALL_MODEL_NAME
    stored = []
    for number, (intent, confidence, text) in enumerate(replies, start=1):
        tokens = input_tokens if number == 1 else 0
        answer = Message.objects.create(
            conversation=conversation,
            role=Role.BOT,
            tier=Tier.SMALL,
            reply_to=message,
            text=text,
            intent=intent,
            confidence=confidence,
            model_name=model,
            input_tokens=tokens,
            cost_usd=costs.cost_usd(model, tokens, 0),
            latency_ms=None if received_at is None else _ms(time.monotonic() - received_at),
        )
        fields = _answer_fields(answer)
        if len(replies) > 1:
            fields.update(part=number, parts=len(replies))
        stored.append(events.add("answer", fields))
    return stored


# The most a latency column holds (a 32-bit integer on PostgreSQL): 24.8 days. An agent answering a
# message older than that is recorded as taking that long; the console's histograms end at an hour.
MAX_LATENCY_MS = 2**31 - 1


def _ms(seconds: float) -> int:
    """A duration in whole milliseconds, never negative (clocks of two machines may disagree a little)
    and at most MAX_LATENCY_MS."""
    return min(MAX_LATENCY_MS, max(0, round(seconds * 1000)))


def _escalate(
    conversation: Conversation, message: Message, reason: Reason, destination: Destination, events: _Events
) -> dict[str, Any]:
    """Hand the customer's (stored) message to the large model or to people; the caller saves `events`."""
    event = _hand_over(conversation, message, reason, destination, events, timezone.now())
    if destination == Destination.LARGE or reason in settings.TANDEM_PEOPLE_DRAFTS:
        # For people, the large model writes a draft that only agents see.
        LargeJob.objects.create(message=message, conversation=conversation, queued_at=timezone.now())
        _queue_large_job(message.id)
    return event


def _queue_large_job(message_id: int) -> None:
    """Send the job to a worker once the transaction commits. Robustly: the question and its job are
    stored whatever happens, and a job the broker never got (Redis down) is caught by the sweep (its
    first-token deadline passes, and the customer is told)."""
    from support.conversations.tasks import answer_with_large_model

    transaction.on_commit(lambda: answer_with_large_model.delay(message_id), robust=True)


def _hand_over(
    conversation: Conversation,
    message: Message,
    reason: Reason,
    destination: Destination,
    events: _Events,
    escalated_at: datetime,
) -> dict[str, Any]:
    """Record where the conversation's question went and since when, and tell the customer and the agents."""
    conversation.owner = Owner.PEOPLE if destination == Destination.PEOPLE else Owner.PENDING
    conversation.escalated_at = escalated_at
    conversation.escalation_reason = reason
    conversation.escalation_destination = destination
    events.change("owner", "escalated_at", "escalation_reason", "escalation_destination")
    event = events.add("escalated", _escalated_fields(message, reason, destination))
    _notify_staff(conversation.id, "escalated")
    return event


def _escalated_fields(message: Message, reason: Reason, destination: Destination) -> dict[str, Any]:
    return {
        "reply_to": message.client_id,
        "reason": reason.value,
        "destination": destination.value,
        "text": notices.escalated(reason, destination),
    }


# --- the large model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    """What a worker may do with a large-model job (`start_large_job`)."""

    # The customer's message to answer; None: nothing to do (answered, failed, or gone).
    message: Message | None
    # This run's number: a later run takes the job over (the heartbeat and the stream check it).
    attempt: int = 0
    # An earlier question of the same conversation is still being answered: try again shortly.
    wait: bool = False


def start_large_job(message_id: int) -> JobRun:
    """Claim a large-model job for a run of the task. A conversation's questions are answered in the
    order they were asked: a job waits while an earlier one of its conversation is unfinished."""
    with transaction.atomic():
        message = Message.objects.select_related("conversation").filter(pk=message_id, role=Role.CUSTOMER).first()
        if message is None:
            return JobRun(None)
        job, _ = LargeJob.objects.select_for_update().get_or_create(
            message=message, defaults={"conversation_id": message.conversation_id, "queued_at": timezone.now()}
        )
        if job.state not in UNFINISHED_JOB_STATES or Message.objects.filter(reply_to=message, tier=Tier.LARGE).exists():
            return JobRun(None)
        earlier = LargeJob.objects.filter(
            conversation_id=job.conversation_id, message_id__lt=message_id, state__in=UNFINISHED_JOB_STATES
        )
        if earlier.exists():
            return JobRun(message, wait=True)
        job.state = JobState.STARTED
        job.attempt += 1
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["state", "attempt", "heartbeat_at"])
        return JobRun(message, attempt=job.attempt)


def _current_run(message_id: int, attempt: int) -> Any:
    return LargeJob.objects.filter(pk=message_id, attempt=attempt, state__in=(JobState.STARTED, JobState.STREAMING))


def large_job_heartbeat(message_id: int, attempt: int) -> bool:
    """The run is alive; False when it is no longer the job's current run (taken over, or finished)."""
    return bool(_current_run(message_id, attempt).update(heartbeat_at=timezone.now()))


def large_job_first_token(message_id: int, attempt: int) -> None:
    """The model wrote its first token: the first-token deadline no longer applies."""
    now = timezone.now()
    _current_run(message_id, attempt).filter(state=JobState.STARTED).update(
        state=JobState.STREAMING, first_token_at=now, heartbeat_at=now
    )


def large_job_retrying(message_id: int, attempt: int) -> None:
    """The run failed and the task will try again: the job waits in the queue (its deadline still
    counts from when it was first queued)."""
    _current_run(message_id, attempt).update(state=JobState.QUEUED, heartbeat_at=None)


def large_run_status(message_id: int, attempt: int) -> tuple[bool, bool]:
    """(whether this run is still the job's current one, whether its answer may reach the customer now)."""
    if not _current_run(message_id, attempt).exists():
        return False, False
    return True, bot_may_reply(message_id)


def bot_may_reply(message_id: int) -> bool:
    """Whether the large model's answer to this message may reach the customer now."""
    message = Message.objects.select_related("conversation").get(pk=message_id)
    return _deliverable(message.conversation, message)


def needs_review(message: Message) -> bool:
    """Whether the large model's answer to `message` waits for an agent (TANDEM_REVIEW_LARGE_ANSWERS)."""
    return (
        message.destination == Destination.LARGE and message.escalation_reason in settings.TANDEM_REVIEW_LARGE_ANSWERS
    )


def _deliverable(conversation: Conversation, message: Message) -> bool:
    """Whether the large model's answer to `message` may reach the customer: only while the bot owns
    the conversation, the message was not sent to people, and nothing since has sent it to people
    (an agent's reply, or a later message routed to people) - otherwise it is a draft for agents."""
    if conversation.owner not in (Owner.BOT, Owner.PENDING) or message.destination == Destination.PEOPLE:
        return False
    if needs_review(message):
        return False
    later = Message.objects.filter(conversation_id=conversation.pk, id__gt=message.id)
    return not later.filter(Q(role=Role.AGENT) | Q(destination=Destination.PEOPLE)).exists()


def _finish_job(message_id: int, state: JobState, error: str = "") -> None:
    LargeJob.objects.filter(pk=message_id).update(state=state, finished_at=timezone.now(), error=error[:300])


def store_large_answer(
    message_id: int, generation: Generation, sources: list[dict[str, str]] | None = None
) -> Message | None:
    """Store the large model's answer once, with the articles it was given (`sources`): sent to the
    customer when it still may be (`_deliverable`), otherwise kept as a draft for the agents (one that
    waits for an agent's approval hands the conversation to people). Returns None when an answer was
    already stored."""
    with transaction.atomic():
        message = Message.objects.select_related("conversation").get(pk=message_id)
        conversation = _locked(message.conversation_id)
        if Message.objects.filter(reply_to=message, tier=Tier.LARGE).exists():
            return None
        deliver = _deliverable(conversation, message)
        first_token_at = LargeJob.objects.filter(pk=message_id).values_list("first_token_at", flat=True).first()
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
            sources=sources or [],
            review_state="" if deliver else ReviewState.WAITING,
            latency_ms=_ms((timezone.now() - message.created_at).total_seconds()),
            first_token_ms=_ms((first_token_at - message.created_at).total_seconds()) if first_token_at else None,
        )
        _finish_job(message_id, JobState.ANSWERED)
        if deliver:
            events = _Events(conversation)
            events.add("answer", _answer_fields(answer))
            if conversation.owner == Owner.PENDING and not _unfinished_jobs(conversation, after=message_id):
                conversation.owner = Owner.BOT
                events.change("owner")
            events.save()
        elif needs_review(message) and conversation.owner in (Owner.BOT, Owner.PENDING):
            # The customer waits for an agent to send it (or their own answer).
            conversation.owner = Owner.PEOPLE
            conversation.save(update_fields=["owner", "updated_at"])
        _notify_staff(conversation.id, "draft" if not deliver else "large_answer")
        return answer


def _unfinished_jobs(conversation: Conversation, after: int) -> bool:
    """Whether a later question of the conversation still waits for the large model."""
    return LargeJob.objects.filter(
        conversation=conversation, message_id__gt=after, state__in=UNFINISHED_JOB_STATES
    ).exists()


def large_answer_failed(message_id: int, error: str, reason: Reason = Reason.LARGE_MODEL_FAILED) -> None:
    """The large model gave up for good (or is not being called: `reason`). A customer waiting for it
    is told, and the conversation goes to people; a draft that failed only leaves the agents without it."""
    with transaction.atomic():
        message = Message.objects.get(pk=message_id)
        conversation = _locked(message.conversation_id)
        logger.error("Large model failed for message %s: %s", message_id, error)
        _finish_job(message_id, JobState.FAILED, error)
        if not _deliverable(conversation, message):
            _notify_staff(conversation.id, "draft_failed")
            return
        events = _Events(conversation)
        since = conversation.escalated_at or timezone.now()
        _hand_over(conversation, message, reason, Destination.PEOPLE, events, since)
        events.save()


def late_large_jobs(deadline_seconds: int) -> list[int]:
    """Questions for the large model with no first token `deadline_seconds` after they were queued,
    whose customer is still waiting for it."""
    cutoff = timezone.now() - timedelta(seconds=deadline_seconds)
    late = LargeJob.objects.filter(
        state__in=(JobState.QUEUED, JobState.STARTED),
        queued_at__lt=cutoff,
        conversation__owner=Owner.PENDING,
        message__destination=Destination.LARGE,
    )
    return list(late.values_list("message_id", flat=True)[:1000])


def large_answer_late(message_id: int) -> bool:
    """The first-token deadline passed: the conversation goes to people (flagged in their queue as
    large_model_slow) and the customer is told. A job a worker has started (or is retrying) goes on,
    and its answer becomes a draft for the agent; one no worker has taken yet is dropped, because a
    queue that long means the large tier is overloaded, and drafts nobody waits for would only make it
    worse. False when the
    question no longer waits (the first token came, or it was answered)."""
    with transaction.atomic():
        message = Message.objects.get(pk=message_id)
        conversation = _locked(message.conversation_id)
        job = LargeJob.objects.filter(pk=message_id, state__in=(JobState.QUEUED, JobState.STARTED)).first()
        if job is None or conversation.owner != Owner.PENDING or not _deliverable(conversation, message):
            return False
        logger.warning("No first token for message %s within the deadline: handed to people", message_id)
        if job.state == JobState.QUEUED and not job.attempt:
            _finish_job(message_id, JobState.FAILED, "handed to people before a worker took it")
        events = _Events(conversation)
        since = conversation.escalated_at or timezone.now()
        _hand_over(conversation, message, Reason.LARGE_MODEL_SLOW, Destination.PEOPLE, events, since)
        events.save()
        return True


def orphaned_large_jobs(silent_seconds: float) -> list[int]:
    """Jobs a worker started and stopped beating for: the worker died (kill -9, out of memory, a lost
    machine), and nothing will finish them."""
    cutoff = timezone.now() - timedelta(seconds=silent_seconds)
    orphaned = LargeJob.objects.filter(state__in=(JobState.STARTED, JobState.STREAMING), heartbeat_at__lt=cutoff)
    return list(orphaned.values_list("message_id", flat=True)[:1000])


# A job whose worker died this many times is not tried again: it may be what kills them.
MAX_RUNS = 3


def requeue_orphaned_job(message_id: int, silent_seconds: float) -> bool:
    """Queue an orphaned job again (its first-token deadline counts afresh), or fail it after MAX_RUNS
    runs. False when it turned out to be alive or finished."""
    cutoff = timezone.now() - timedelta(seconds=silent_seconds)
    with transaction.atomic():
        job = (
            LargeJob.objects.select_for_update()
            .filter(pk=message_id, state__in=(JobState.STARTED, JobState.STREAMING), heartbeat_at__lt=cutoff)
            .first()
        )
        if job is None:
            return False
        if job.attempt >= MAX_RUNS:
            large_answer_failed(message_id, f"the worker stopped during each of {job.attempt} runs")
            return True
        logger.warning("The worker answering message %s stopped (run %s): queued again", message_id, job.attempt)
        job.state = JobState.QUEUED
        job.queued_at = timezone.now()
        job.heartbeat_at = None
        job.save(update_fields=["state", "queued_at", "heartbeat_at"])
        _queue_large_job(message_id)
        return True


def stuck_large_jobs(older_than_seconds: int) -> list[int]:
    """Jobs still queued `older_than_seconds` after they were queued: their task was lost (Redis lost
    its queue, or was down when it was queued). The customer was told at the first-token deadline."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = LargeJob.objects.filter(state=JobState.QUEUED, queued_at__lt=cutoff)
    return list(stuck.values_list("message_id", flat=True)[:1000])


# --- agents ---------------------------------------------------------------------------------------------------


def take_over(conversation_id: uuid.UUID, agent: User) -> Conversation:
    """Make the agent the owner. Refused when another agent owns the conversation."""
    with transaction.atomic():
        conversation = _locked(conversation_id)
        if conversation.owner == Owner.HUMAN and conversation.agent_id not in (None, agent.pk):
            raise ConversationError("owned_by_another_agent", "Another agent is handling this conversation.")
        _make_owner(conversation, agent, "taken_over")
        return conversation


def _make_owner(conversation: Conversation, agent: User, change: str) -> None:
    if conversation.owner != Owner.HUMAN or conversation.agent_id != agent.pk:
        conversation.owner = Owner.HUMAN
        conversation.agent_id = agent.pk
        conversation.save(update_fields=["owner", "agent", "updated_at"])
        _notify_staff(conversation.id, change)


def written_text(text: str, what: str) -> str:
    """An agent's text (a reply, a note), stripped; refused when empty or longer than a message may be."""
    text = text.strip()
    if not text:
        raise ConversationError("empty_text", f"The {what} is empty.")
    if len(text) > settings.TANDEM_MAX_MESSAGE_CHARS:
        raise ConversationError(
            "text_too_long", f"The {what} is longer than {settings.TANDEM_MAX_MESSAGE_CHARS} characters."
        )
    return text


def post_agent_reply(conversation_id: uuid.UUID, agent: User, text: str, reply_to: Message | None = None) -> Message:
    """The agent's reply, to `reply_to` or else the latest customer message; replying claims the conversation."""
    text = written_text(text, "reply")
    with transaction.atomic():
        conversation = take_over(conversation_id, agent)
        conversation = _locked(conversation_id)
        if reply_to is None:
            reply_to = conversation.messages.filter(role=Role.CUSTOMER).order_by("-created_at", "-id").first()
        reply = Message.objects.create(
            conversation=conversation,
            role=Role.AGENT,
            tier=Tier.AGENT,
            author=agent,
            reply_to=reply_to,
            text=text,
            # The agent's response time to the message replied to.
            latency_ms=_ms((timezone.now() - reply_to.created_at).total_seconds()) if reply_to else None,
        )
        conversation.escalated_at = None
        conversation.save(update_fields=["escalated_at", "updated_at"])
        _append_event(conversation, "answer", _answer_fields(reply))
        _notify_staff(conversation.id, "agent_reply")
        return reply


def assign(conversation_id: uuid.UUID, admin: User, agent: User) -> Conversation:
    """An admin makes `agent` the owner, whoever owned the conversation before."""
    if not is_admin(admin):
        raise ConversationError("not_an_admin", "Only an admin assigns conversations.")
    if not is_agent(agent):
        raise ConversationError("not_an_agent", f"{agent.get_username()} is not an agent.")
    with transaction.atomic():
        conversation = _locked(conversation_id)
        _make_owner(conversation, agent, "assigned")
        return conversation


def _check_not_another_s(conversation: Conversation, agent: User) -> None:
    """Refused when another agent owns the conversation (an admin may act all the same)."""
    if conversation.owner == Owner.HUMAN and conversation.agent_id != agent.pk and not is_admin(agent):
        raise ConversationError("owned_by_another_agent", "Another agent is handling this conversation.")


def _waiting_draft(conversation_id: uuid.UUID, draft_id: int) -> Message:
    """The draft, locked with its conversation; refused when it is not (any longer) waiting."""
    _locked(conversation_id)
    draft = (
        Message.objects.select_related("reply_to")
        .filter(pk=draft_id, conversation_id=conversation_id, tier=Tier.LARGE)
        .first()
    )
    if draft is not None and draft.review_state not in ("", ReviewState.WAITING):
        raise ConversationError("draft_done", f"This draft was {draft.get_review_state_display().lower()} already.")
    if draft is None or draft.delivered:
        raise ConversationError("no_such_draft", "There is no such draft in this conversation.")
    return draft


def _reviewed(draft: Message, agent: User, state: ReviewState, note: str = "") -> None:
    draft.review_state = state
    draft.reviewed_by = agent
    draft.reviewed_at = timezone.now()
    draft.review_note = note
    fields = ["review_state", "reviewed_by", "reviewed_at", "review_note"]
    if state == ReviewState.APPROVED:
        draft.delivered = True
        fields.append("delivered")
    draft.save(update_fields=fields)


def approve_draft(conversation_id: uuid.UUID, draft_id: int, agent: User) -> Message:
    """Send the large model's draft to the customer as it is, in the agent's name (which claims the
    conversation, as a reply does)."""
    with transaction.atomic():
        take_over(conversation_id, agent)
        draft = _waiting_draft(conversation_id, draft_id)
        _reviewed(draft, agent, ReviewState.APPROVED)
        conversation = _locked(conversation_id)
        conversation.escalated_at = None
        events = _Events(conversation)
        events.change("escalated_at")
        events.add("answer", {**_answer_fields(draft), "agent": agent_name(agent)})
        events.save()
        _notify_staff(conversation.id, "draft_approved")
        return draft


def send_edited_draft(conversation_id: uuid.UUID, draft_id: int, agent: User, text: str) -> Message:
    """The agent's own version of the draft goes to the customer as their reply; the draft is kept, marked
    edited."""
    with transaction.atomic():
        draft = _waiting_draft(conversation_id, draft_id)
        reply = post_agent_reply(conversation_id, agent, text, reply_to=draft.reply_to)
        _reviewed(draft, agent, ReviewState.EDITED)
        return reply


def reject_draft(conversation_id: uuid.UUID, draft_id: int, agent: User, reason: str) -> Message:
    """The draft will not be sent (why is kept for whoever improves the articles); the customer still
    waits for an agent."""
    if not is_agent(agent):
        raise ConversationError("not_an_agent", "Only agents review drafts.")
    reason = " ".join(reason.split())
    if not reason:
        raise ConversationError("empty_reason", "Say why the draft is rejected.")
    if len(reason) > 500:
        raise ConversationError("reason_too_long", "The reason is longer than 500 characters.")
    with transaction.atomic():
        conversation = _locked(conversation_id)
        _check_not_another_s(conversation, agent)
        draft = _waiting_draft(conversation_id, draft_id)
        _reviewed(draft, agent, ReviewState.REJECTED, reason)
        _notify_staff(conversation.id, "draft_rejected")
        return draft


def _release(conversation_id: uuid.UUID, agent: User, owner: Owner, change: str, notice: str) -> Conversation:
    """End the agent's ownership (and any pending escalation): to the bot again, or closed. The customer
    is told, in a stored `system` event."""
    with transaction.atomic():
        conversation = _locked(conversation_id)
        _check_not_another_s(conversation, agent)
        if conversation.owner == Owner.CLOSED and owner == Owner.CLOSED:
            return conversation  # a second click, another tab: nothing to tell anyone
        # The customer hears of it when people had the conversation, or when it closes. (Handing back a
        # conversation the bot owns only marks its escalation as seen.)
        tell = conversation.owner in PEOPLE_OWNERS or owner == Owner.CLOSED
        conversation.owner = owner
        conversation.agent = None
        conversation.escalated_at = None
        events = _Events(conversation)
        events.change("owner", "agent", "escalated_at")
        if tell:
            events.add("system", {"event": change, "text": notice})
        events.save()
        _notify_staff(conversation.id, change)
        return conversation


def hand_back(conversation_id: uuid.UUID, agent: User) -> Conversation:
    """The agent is done: the bot answers again."""
    return _release(conversation_id, agent, Owner.BOT, "handed_back", notices.HANDED_BACK)


def close(conversation_id: uuid.UUID, agent: User) -> Conversation:
    """Closed; a customer who writes again reopens it with the bot."""
    return _release(conversation_id, agent, Owner.CLOSED, "closed", notices.CLOSED)


# --- customer satisfaction ----------------------------------------------------------------------------------


def rate(
    conversation_id: uuid.UUID,
    client_id: str,
    reply_to: str | None,
    score: int,
    comment: str,
    socket: str | None = None,
) -> dict[str, Any]:
    """The customer's thumbs up (+1) or down (-1), with an optional comment, on the answers to their
    message `reply_to` (its client id), or on the whole conversation (`reply_to` None). One rating per
    (conversation, message): a later one replaces the earlier score and comment. Refused for a message
    that is not this conversation's customer's, or has no answer yet. Returns the not-stored `rated`
    frame for the socket that sent it (`socket`); the conversation's other sockets get it on commit.
    The caller validated the frame (protocol.parse_client_frame)."""
    assert score in (1, -1)
    with transaction.atomic():
        # Locked, so two ratings of the same answer (two tabs) replace each other instead of colliding.
        conversation = _locked(conversation_id)
        message = None
        delivered = Message.objects.filter(conversation=conversation, delivered=True).exclude(role=Role.CUSTOMER)
        if reply_to is not None:
            message = Message.objects.filter(conversation=conversation, role=Role.CUSTOMER, client_id=reply_to).first()
            if message is None:
                raise ConversationError("unknown_message", "There is no message of yours with that id to rate.")
            delivered = delivered.filter(reply_to=message)
        answer = delivered.order_by("-created_at", "-id").first()
        if message is not None and answer is None:
            raise ConversationError("not_answered", "That message has no answer to rate yet.")
        Rating.objects.update_or_create(
            conversation=conversation,
            message=message,
            defaults={
                "answer": answer,
                "score": score,
                "comment": comment,
                "tier": answer.tier if answer else "",
                "destination": message.destination if message else "",
            },
        )
        _notify_staff(conversation.id, "rated")
        shared = rated_frame(None, reply_to, score, comment)
        transaction.on_commit(lambda: broadcast.send_to_conversation(conversation.id, shared, skip=socket))
    return rated_frame(client_id, reply_to, score, comment)


def ratings_of(conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    """The conversation's ratings as `rated` frames (id null), for a page that replays the conversation."""
    ratings = Rating.objects.filter(conversation_id=conversation_id).select_related("message").order_by("updated_at")
    return [
        rated_frame(None, rating.message.client_id if rating.message else None, rating.score, rating.comment)
        for rating in ratings
    ]


# --- privacy ------------------------------------------------------------------------------------------------


def erase_conversations(conversation_ids: list[uuid.UUID]) -> int:
    """Delete these conversations and everything stored with them (messages, drafts, events); their open
    sockets are closed. Returns how many were erased."""
    with transaction.atomic():
        erased = list(Conversation.objects.filter(pk__in=conversation_ids).values_list("pk", flat=True))
        Conversation.objects.filter(pk__in=erased).delete()
    for conversation_id in erased:
        broadcast.close_conversation(conversation_id)
    return len(erased)


def purge_inactive_conversations(days: int) -> int:
    """Erase the conversations with no activity for `days` days (the retention setting)."""
    cutoff = timezone.now() - timedelta(days=days)
    stale = list(Conversation.objects.filter(updated_at__lt=cutoff).values_list("pk", flat=True)[:10_000])
    return erase_conversations(stale)
