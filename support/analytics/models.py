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
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Hour {self.hour:%Y-%m-%d %H:00} UTC"


class IntentDayRollup(models.Model):
    """The same per intent ("" for messages with none), per calendar day in the site's time zone."""

    day = models.DateField()
    intent = models.CharField(max_length=100, blank=True)
    figures = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "intent"], name="intent_day_rollup_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.intent or '(no intent)'}"


class StaleHour(models.Model):
    """An hour whose rollups no longer match its messages (one was created, answered, labelled, rated
    since). `marked_at` moves on at each new mark, so a rebuild that started earlier does not clear it."""

    hour = models.DateTimeField(primary_key=True)
    marked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Stale {self.hour:%Y-%m-%d %H:00} UTC"
