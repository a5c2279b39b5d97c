"""Spot checks: agents check a random sample of the answers the small tier sent on its own.

Labels of escalated messages are the questions the small model was unsure of; nobody sees its
confident mistakes. A random share of its answers (TANDEM_SPOT_CHECK_SHARE), checked by people, is
what measures its real accuracy, and what retraining chooses the router's thresholds on
(support/knowledge/retraining.py).

A message is in the sample when a hash of its id falls under the share: no row is written when the
small tier answers, the same messages stay sampled from one page view to the next, and raising the
share adds older answers to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F, QuerySet
from django.db.models.functions import Mod

from chatbot import smalltalk
from chatbot.routes import Destination
from support.conversations.models import Message, Role
from support.review.models import Label

BUCKETS = 10_000
# Knuth's multiplicative hash: consecutive ids land in buckets spread over the whole range. (Ids stay
# far below 2**63 / MIX, so the product fits a 64-bit integer on both databases.)
MIX = 2_654_435_761
# Spot checks shown on one page.
PAGE_SIZE = 25


def _cut() -> int:
    return round(settings.TANDEM_SPOT_CHECK_SHARE * BUCKETS)


def is_sampled(message: Message) -> bool:
    """Whether this customer message is one the desk asks agents to check."""
    return answered_by_small_tier().filter(pk=message.pk).exists() and (message.pk * MIX) % BUCKETS < _cut()


def answered_by_small_tier() -> QuerySet[Message]:
    """Customer messages the small tier answered with an article (small talk is not checked)."""
    return Message.objects.filter(role=Role.CUSTOMER, destination=Destination.SMALL).exclude(
        intent__startswith=smalltalk.PREFIX
    )


def sampled() -> QuerySet[Message]:
    """The customer messages the small tier answered that are in the sample, checked or not."""
    return answered_by_small_tier().alias(bucket=Mod(F("pk") * MIX, BUCKETS)).filter(bucket__lt=_cut())


def waiting() -> QuerySet[Message]:
    """Sampled answers no agent has checked yet, newest first."""
    return sampled().filter(label__isnull=True).order_by("-created_at", "-id")


@dataclass(frozen=True)
class Accuracy:
    """The small tier's answers as spot checks found them: checked, right, and a 95 % Wilson interval."""

    checked: int
    right: int

    @property
    def share(self) -> float | None:
        return self.right / self.checked if self.checked else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.checked:
            return None
        z, n, p = 1.96, self.checked, self.right / self.checked
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


def accuracy() -> Accuracy:
    """How often the checked answers were right: the article an agent chose is the one the small tier
    answered with. (New topic or not a support question: the answer was wrong.)"""
    checks = Label.objects.filter(spot_check=True)
    right = checks.filter(article=F("message__intent")).count()
    return Accuracy(checks.count(), right)
