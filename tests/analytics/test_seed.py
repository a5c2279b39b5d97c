"""`manage.py seed_traffic`: realistic synthetic traffic, counted by the console exactly as written."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from support.analytics.stats import compute_stats
from support.conversations.models import Conversation, Message, Rating, Role, Tier
from support.review.models import Label

pytestmark = pytest.mark.django_db


def test_seeded_traffic_spreads_over_the_days_and_the_console_counts_all_of_it(prices: None) -> None:
    out = io.StringIO()
    call_command("seed_traffic", "--messages", "600", "--days", "20", stdout=out)
    customers = Message.objects.filter(role=Role.CUSTOMER)
    assert customers.count() == 600 and "600 customer messages" in out.getvalue()
    now = timezone.now()
    oldest = customers.order_by("created_at").first()
    assert oldest is not None and now - timedelta(days=20, minutes=1) <= oldest.created_at < now - timedelta(days=10)
    assert set(customers.values_list("destination", flat=True)) == {"small", "large", "people"}
    assert Message.objects.filter(tier=Tier.SMALL, latency_ms__isnull=False).exists()
    assert Message.objects.filter(tier=Tier.LARGE, first_token_ms__isnull=False).exists()
    assert Rating.objects.exists() and Label.objects.filter(spot_check=True).exists()
    stats = compute_stats(timezone.localdate() - timedelta(days=21), timezone.localdate())
    assert stats["messages"] == 600 and stats["conversations"]["started"] == Conversation.objects.count()
    assert stats["latency_ms"]["small"]["answers"] == Message.objects.filter(tier=Tier.SMALL).count()
    # The same seed writes the same traffic (but adds to what is there).
    call_command("seed_traffic", "--messages", "10", "--days", "1", stdout=io.StringIO())
    assert customers.count() == 610
    with pytest.raises(CommandError, match="at least 1"):
        call_command("seed_traffic", "--messages", "0")
