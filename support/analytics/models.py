"""Rollups: the console's figures, kept per hour and per day and intent, so that a month of a busy site
reads a few thousand rows instead of every message (support/analytics/rollups.py)."""

from __future__ import annotations

from django.db import models


class HourRollup(models.Model):
    """What became of the customer messages created in one UTC hour (and of the conversations started
    in it): counts, costs, escalations, as they stand now. Rebuilt from the messages whenever one of
    them changes (see StaleHour)."""

    hour = models.DateTimeField(primary_key=True)
    figures = models.JSONField(default=dict)
    # The by-intent part of the figures (rollups.INTENT_FIGURES under each intent): a day's intent rows
    # are the sum of its hours', so a change rebuilds one hour, not the day. Not read by the series.
    intents = models.JSONField(default=dict)
    # The CSV lines (rollups.CSV_HEADER, each ending "\r\n") of the conversations started in the hour,
    # newest first: the unfiltered conversation export of a range reads one value an hour, not one row
    # per conversation.
    conversation_lines = models.TextField(default="")
    # Their rollups.conversation_key()s, a line each in the same order: the list's filters read them.
    conversation_keys = models.TextField(default="")
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Hour {self.hour:%Y-%m-%d %H:00} UTC"


class DayRollup(models.Model):
    """The sum of the hour rollups of one calendar day in the site's time zone: a month's figures are
    thirty rows to add, not seven hundred."""

    day = models.DateField(primary_key=True)
    figures = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"Day {self.day}"


class IntentDayRollup(models.Model):
    """The same per intent ("" for messages with none), per calendar day in the site's time zone."""

    day = models.DateField()
    intent = models.CharField(max_length=100, blank=True)
    figures = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "intent"], name="intent_day_rollup_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.intent or '(no intent)'}"


class ConversationRollup(models.Model):
    """One conversation's figures for the console's conversation list and its CSV export, rebuilt with
    the hour the conversation started in (every change to one of its messages, and every change of its
    state, marks that hour stale). `line` is its CSV row, made then: the export of a month is one query
    through the index and no formatting per row."""

    conversation = models.OneToOneField(
        "conversations.Conversation", primary_key=True, on_delete=models.CASCADE, related_name="rollup"
    )
    created_at = models.DateTimeField()
    owner = models.CharField(max_length=16)
    customer_messages = models.PositiveIntegerField(default=0)
    # Customer messages by where the router sent them.
    to_small = models.PositiveIntegerField(default=0)
    to_large = models.PositiveIntegerField(default=0)
    to_people = models.PositiveIntegerField(default=0)
    # Messages that mean people handled it: a customer message sent to people, or an agent's reply.
    people_messages = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    # What its customer messages were, for the list's filters: "|intent>destination|…" (rollups.route_token).
    routes = models.TextField(default="|")
    line = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["-created_at", "-conversation"], name="conversation_rollup_started")]

    def __str__(self) -> str:
        return f"Rollup of {self.conversation_id}"

    @property
    def handled_by_people(self) -> bool:
        return self.people_messages > 0

    def get_owner_display(self) -> str:
        from support.conversations.models import Owner

        return str(Owner(self.owner).label) if self.owner in Owner.values else self.owner


class StaleHour(models.Model):
    """An hour whose rollups no longer match its messages (one was created, answered, labelled, rated
    since). `marked_at` moves on at each new mark, so a rebuild that started earlier does not clear it."""

    hour = models.DateTimeField(primary_key=True)
    marked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Stale {self.hour:%Y-%m-%d %H:00} UTC"
