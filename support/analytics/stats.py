"""Traffic, tier mix, escalations and costs over a date range, aggregated in the database.

Dates are calendar days in settings.TIME_ZONE, both ends inclusive: a range covers
[date_from 00:00, date_to + 1 day 00:00) in that zone. A message counts on the day it was created.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from chatbot import costs
from support.conversations.models import Message, Role, Tier

DEFAULT_DAYS = 30
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIERS = (Tier.SMALL, Tier.LARGE, Tier.AGENT)

BASELINE_METHOD = (
    "What the same traffic would have cost had every customer message gone to the large model: "
    "customer messages the large model did answer count at their real cost (drafts included, they were "
    "paid for); every other customer message is estimated at the mean input and output tokens of a "
    "large-model answer in the range (else over all time, else the configured defaults "
    "TANDEM_BASELINE_INPUT_TOKENS / TANDEM_BASELINE_OUTPUT_TOKENS), priced as the large model in use "
    "(the model of the most recent large answer, else TANDEM_LLM_MODEL_NAME)."
)


def parse_range(from_str: str | None, to_str: str | None) -> tuple[date, date]:
    """Parse YYYY-MM-DD bounds; a missing `to` is today, a missing `from` is 30 days ending at `to`."""
    date_to = _parse_date("to", to_str) if to_str else timezone.localdate()
    date_from = _parse_date("from", from_str) if from_str else date_to - timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise ValueError(f"'from' ({date_from.isoformat()}) is after 'to' ({date_to.isoformat()})")
    return date_from, date_to


def _parse_date(name: str, value: str) -> date:
    value = value.strip()
    # fromisoformat alone also accepts forms like 20240101 or 2024-W01; the API promises one format.
    if _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"'{name}' must be a date in YYYY-MM-DD format, got {value!r}")


def day_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(date_from, time.min), zone)
    end = timezone.make_aware(datetime.combine(date_to + timedelta(days=1), time.min), zone)
    return start, end


def _usd(value: Decimal) -> float:
    return float(round(value, 6))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def compute_stats(date_from: date, date_to: date) -> dict[str, Any]:
    """Counts, tier shares, escalations and costs of messages created between the two dates (inclusive).

    `baseline_all_large_usd`: see BASELINE_METHOD. `savings_usd` is that baseline minus the real total.
    """
    start, end = day_bounds(date_from, date_to)
    in_range = Q(created_at__gte=start, created_at__lt=end)
    customer = Message.objects.filter(in_range, role=Role.CUSTOMER)
    answers = Message.objects.filter(in_range, role__in=(Role.BOT, Role.AGENT))

    counts = customer.aggregate(messages=Count("id"), escalated=Count("id", filter=~Q(escalation_reason="")))
    messages: int = counts["messages"]
    by_tier = answers.aggregate(
        **{f"n_{t}": Count("id", filter=Q(tier=t, delivered=True)) for t in (Tier.LARGE, Tier.AGENT)},
        # A multi-part message gets one small answer per part: it counts once, as one message answered.
        **{f"n_{Tier.SMALL}": Count("reply_to", distinct=True, filter=Q(tier=Tier.SMALL, delivered=True))},
        # Undelivered drafts count in cost: the model ran and was paid for.
        **{f"usd_{t}": Sum("cost_usd", filter=Q(tier=t)) for t in (Tier.SMALL, Tier.LARGE)},
    )
    answered = {str(t): by_tier[f"n_{t}"] for t in _TIERS}
    delivered = sum(answered.values())
    small_usd = by_tier["usd_small"] or Decimal(0)
    large_usd = by_tier["usd_large"] or Decimal(0)
    total_usd = small_usd + large_usd  # agents' replies use no model tokens
    reasons = (
        customer.exclude(escalation_reason="")
        .values("escalation_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "escalation_reason")
    )
    baseline, large_model = _baseline_all_large(customer, messages, in_range)

    return {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "messages": messages,
        "answered": answered,
        "share_answered": {tier: _share(n, delivered) for tier, n in answered.items()},
        "escalation_rate": _share(counts["escalated"], messages),
        "escalations_by_reason": {row["escalation_reason"]: row["n"] for row in reasons},
        "cost_usd": {"small": _usd(small_usd), "large": _usd(large_usd), "total": _usd(total_usd)},
        "baseline_all_large_usd": _usd(baseline),
        "savings_usd": _usd(baseline - total_usd),
        "large_model": large_model,
    }


def _baseline_all_large(customer: QuerySet[Message], messages: int, in_range: Q) -> tuple[Decimal, str]:
    """(baseline cost, model priced): see BASELINE_METHOD."""
    large = Message.objects.filter(tier=Tier.LARGE)
    real = large.filter(reply_to__in=customer).aggregate(n=Count("id"), usd=Sum("cost_usd"))
    others = messages - real["n"]  # one large answer per customer message at most (a constraint)

    latest = large.exclude(model_name="").order_by("-created_at", "-id").values_list("model_name", flat=True).first()
    model = str(latest or getattr(settings, "TANDEM_LLM_MODEL_NAME", "SmolLM2-135M-Instruct"))

    # Token totals and a count rather than Avg, so others × mean stays exact integer/Decimal arithmetic.
    tokens = {"n": Count("id"), "tokens_in": Sum("input_tokens"), "tokens_out": Sum("output_tokens")}
    observed = large.filter(in_range).aggregate(**tokens)
    if not observed["n"]:
        observed = large.aggregate(**tokens)
    if observed["n"]:
        estimate = (
            costs.cost_usd(model, others * observed["tokens_in"], others * observed["tokens_out"]) / observed["n"]
        )
    else:
        tokens_in = int(getattr(settings, "TANDEM_BASELINE_INPUT_TOKENS", 600))
        tokens_out = int(getattr(settings, "TANDEM_BASELINE_OUTPUT_TOKENS", 120))
        estimate = costs.cost_usd(model, others * tokens_in, others * tokens_out)
    return (real["usd"] or Decimal(0)) + estimate, model
