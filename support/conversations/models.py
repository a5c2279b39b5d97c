"""A conversation, its messages, and the numbered events a widget replays."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from support.conversations.protocol import MAX_RATING_COMMENT_CHARS


class Owner(models.TextChoices):
    BOT = "bot", "Bot"
    # Waiting for the large model.
    PENDING = "pending", "Pending"
    # Sent to people (routed there, or the large model failed): waiting for an agent to take it. No
    # bot answers the customer until an agent hands the conversation back.
    PEOPLE = "people", "Waiting for an agent"
    HUMAN = "human", "Agent"
    CLOSED = "closed", "Closed"


# The owners under which people answer the customer and the bots stay quiet.
PEOPLE_OWNERS = frozenset({Owner.PEOPLE, Owner.HUMAN})


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    BOT = "bot", "Bot"
    AGENT = "agent", "Agent"


class Tier(models.TextChoices):
    SMALL = "small", "Small model"
    LARGE = "large", "Large model"
    AGENT = "agent", "Agent"


class ReviewState(models.TextChoices):
    WAITING = "waiting", "Waiting for an agent"
    APPROVED = "approved", "Approved"
    EDITED = "edited", "Edited and sent"
    REJECTED = "rejected", "Rejected"


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=16, choices=Owner.choices, default=Owner.BOT)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last event number handed out; events are numbered 1, 2, 3 … per conversation.
    last_seq = models.PositiveIntegerField(default=0)
    # Set while an escalation waits for review; cleared when an agent replies or closes it.
    escalated_at = models.DateTimeField(null=True, blank=True, db_index=True)
    escalation_reason = models.CharField(max_length=32, blank=True)
    # Where that escalation went: "large" or "people" (chatbot.routes.Destination).
    escalation_destination = models.CharField(max_length=16, blank=True)
    # The language the customer writes in (ISO 639-1), from the last message long enough to tell.
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Flood control counts the conversations waiting for the large model on every escalation.
            models.Index(fields=["owner"], condition=models.Q(owner="pending"), name="conversation_pending"),
            # Each metrics scrape counts those waiting, for the large model or for people, and finds the
            # longest wait: a few rows among hundreds of thousands. (Not a partial index: SQLite 3.40
            # does not use one whose condition is an IN list for a query's IN list of bound parameters.)
            models.Index(fields=["owner", "escalated_at"], name="conversation_waiting"),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.id}"

    @property
    def with_people(self) -> bool:
        """People own the conversation (an agent, or the queue waiting for one): no bot answers."""
        return self.owner in PEOPLE_OWNERS


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    # The widget's id for a customer message; a repeat of it is the same message.
    # NULL, not "", for non-customer messages: the unique constraint below must ignore them.
    client_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    text = models.TextField()
    # For answers: the customer message answered, and by which tier.
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    tier = models.CharField(max_length=8, choices=Tier.choices, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For customer messages: what the small model made of it and what the policy decided.
    intent = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    escalation_reason = models.CharField(max_length=32, blank=True)
    # Where the router sent it: "small", "large" or "people" (blank: it waited for the agent who owned
    # the conversation, unrouted).
    destination = models.CharField(max_length=16, blank=True)
    # The language it was taken to be in (ISO 639-1).
    language = models.CharField(max_length=8, blank=True)
    # Costs: tokens read and written by the model that produced (or classified) this message.
    model_name = models.CharField(max_length=200, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # False for a large-model draft produced after an agent took over: kept for the agent, never sent.
    delivered = models.BooleanField(default=True)
    # For large-model answers: the knowledge-base articles the model was given ([{"slug", "title"}]).
    sources = models.JSONField(default=list, blank=True)
    # For drafts: waiting for an agent, then approved (sent as written), edited (the agent sent their own
    # version) or rejected (with the agent's reason in review_note).
    review_state = models.CharField(max_length=16, choices=ReviewState.choices, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=500, blank=True)
    # Latency, in whole milliseconds, for the manager's console (p50/p95 per tier). Set on answers
    # (role bot or agent), null on customer messages and where it was not measured:
    # - small tier: from the chat socket receiving the customer's frame (before flood control and
    #   routing) to this answer being written, on the server's monotonic clock (every part of a
    #   multi-part answer gets its own). Null when the message did not come through a chat socket.
    # - large tier: from the customer's message being stored (reply_to.created_at) to this answer
    #   being stored, queueing and retries included; a draft's is the time to the draft, not to an
    #   agent sending it (that is reviewed_at - reply_to.created_at).
    # - agent: from the customer message replied to (reply_to.created_at) to this reply: the agent's
    #   response time. Null when the reply answers no customer message.
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Large tier only: from the customer's message being stored to the model's first token (of the run
    # that wrote this answer: a retried or restarted job counts from the same start), in milliseconds.
    # The large tier's times are differences of wall clocks (server and worker): as good as their sync.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The console's reports: one tier's answers (their latency, their cost) within a period.
        indexes = [models.Index(fields=["tier", "created_at"], name="message_tier_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=models.Q(role="customer"),
                name="unique_customer_client_id",
            ),
            # A redelivered large-model task must not store a second answer.
            models.UniqueConstraint(
                fields=["reply_to"], condition=models.Q(tier="large"), name="one_large_answer_per_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class Rating(models.Model):
    """A customer's thumbs up or down, with an optional comment, on an answer or on the whole conversation
    (the widget asks after answers and once an agent closes the conversation). One per (conversation,
    message): rating again replaces the score and the comment (`updated_at` moves, `created_at` stays).
    Written by actions.rate from the protocol's `rating` frame (docs/protocol.md)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="ratings")
    # The customer message whose answer was rated (the frame's `reply_to`); null: the whole conversation.
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="ratings")
    # The answer the customer saw and rated, when the rating was last given: the latest delivered answer
    # to `message` (bot or agent), or for a conversation rating the conversation's latest delivered
    # answer (null if it had none).
    answer = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="answer_ratings")
    # +1 thumbs up, -1 thumbs down.
    score = models.SmallIntegerField(choices=[(1, "Thumbs up"), (-1, "Thumbs down")])
    comment = models.CharField(max_length=MAX_RATING_COMMENT_CHARS, blank=True)
    # Copied from the answer for reporting without joins: its tier ("small", "large", "agent"; blank
    # without an answer) ...
    tier = models.CharField(max_length=8, choices=Tier.choices, blank=True)
    # ... and, for a message rating, where the router sent the question (Message.destination: "small",
    # "large", "people", or blank when it waited for the agent who owned the conversation). Blank for a
    # conversation rating.
    destination = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "message"],
                condition=models.Q(message__isnull=False),
                name="one_rating_per_message",
            ),
            models.UniqueConstraint(
                fields=["conversation"], condition=models.Q(message__isnull=True), name="one_rating_per_conversation"
            ),
            models.CheckConstraint(condition=models.Q(score__in=[1, -1]), name="rating_score_up_or_down"),
        ]

    def __str__(self) -> str:
        return f"{'👍' if self.score > 0 else '👎'} on {self.message_id or 'the conversation'}"


class Event(models.Model):
    """A stored protocol event; `payload` is exactly the frame the widget receives."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=16)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="unique_event_seq")]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq}"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    # A worker runs it; no token yet.
    STARTED = "started", "Started"
    # The first token came.
    STREAMING = "streaming", "Streaming"
    ANSWERED = "answered", "Answered"
    FAILED = "failed", "Failed"


# The states of a job a worker still owes an answer for.
UNFINISHED_JOB_STATES = (JobState.QUEUED, JobState.STARTED, JobState.STREAMING)


class LargeJob(models.Model):
    """The large model's work on one customer message: queued when the message is escalated, then
    started, streaming, and answered or failed. The sweeps read it to keep the tier responsive: a job
    with no first token by its deadline goes to people, a job whose worker stopped beating is queued
    again, and a conversation's jobs run in the order of its messages."""

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="large_job")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    # When it was (last) queued: the first-token deadline counts from here.
    queued_at = models.DateTimeField()
    # Each run of the job takes the next number; a run that finds a later one has taken over stops.
    attempt = models.PositiveIntegerField(default=0)
    # The running worker writes this every few seconds; a job whose heartbeat stopped lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Why it failed (no message text).
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["queued_at"],
                condition=models.Q(state__in=["queued", "started", "streaming"]),
                name="large_job_unfinished",
            ),
            # Each metrics scrape counts the jobs by state (one per large-model answer: hundreds of
            # thousands) from the index alone.
            models.Index(fields=["state"], name="large_job_state"),
        ]

    def __str__(self) -> str:
        return f"Large job for message {self.message_id}: {self.state}"
