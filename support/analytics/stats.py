"""Traffic, tier mix, escalations and costs over a date range, and over time, from the rollups
(support/analytics/rollups.py).

Dates are calendar days in settings.TIME_ZONE, both ends inclusive: a range covers
[date_from 00:00, date_to + 1 day 00:00) in that zone. A customer message counts on the day it was
created, and so does everything that became of it (its answers and their cost, even if they came later).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from chatbot import costs
from chatbot.smalltalk import is_small_talk
from support.analytics import rollups
from support.conversations.models import Message, Tier

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


def _large_model() -> str:
    latest = (
        Message.objects.filter(tier=Tier.LARGE)
        .exclude(model_name="")
        .order_by("-created_at", "-id")
        .values_list("model_name", flat=True)
        .first()
    )
    return str(latest or getattr(settings, "TANDEM_LLM_MODEL_NAME", "SmolLM2-135M-Instruct"))


@dataclass(frozen=True)
class LargeEstimate:
    """What one customer message would cost sent to the large model (see BASELINE_METHOD)."""

    usd_per_message: Decimal
    model: str
    basis: str


def baseline_per_message(large_answers: list[int]) -> LargeEstimate:
    """The cost of one customer message the large model did not answer, had it answered it: see
    BASELINE_METHOD. `large_answers`: [count, input tokens, output tokens] in the range ([0, 0, 0]: over
    all time). The operating point's curve prices the large tier with it too."""
    model = _large_model()
    count, tokens_in, tokens_out = large_answers
    if not count:
        every = Message.objects.filter(tier=Tier.LARGE).aggregate(
            n=Count("pk"), tokens_in=Sum("input_tokens"), tokens_out=Sum("output_tokens")
        )
        count, tokens_in, tokens_out = every["n"], every["tokens_in"] or 0, every["tokens_out"] or 0
    if count:
        basis = f"mean tokens of {count} large-model answers"
        return LargeEstimate(costs.cost_usd(model, tokens_in, tokens_out) / count, model, basis)
    tokens_in = int(getattr(settings, "TANDEM_BASELINE_INPUT_TOKENS", 600))
    tokens_out = int(getattr(settings, "TANDEM_BASELINE_OUTPUT_TOKENS", 120))
    basis = f"no large-model answer yet: {tokens_in} input and {tokens_out} output tokens assumed"
    return LargeEstimate(costs.cost_usd(model, tokens_in, tokens_out), model, basis)


def people_seconds_per_message(figures: dict[str, Any]) -> float:
    """Agents' seconds per customer message they answered in these figures (else the setting): what the
    all-people comparison prices every message at."""
    answered = figures.get("answered", {}).get("agent", 0)
    if answered and figures.get("agent_seconds"):
        return float(figures["agent_seconds"]) / answered
    return float(settings.TANDEM_AGENT_SECONDS_PER_MESSAGE)


def _people_usd(seconds: float) -> Decimal:
    return Decimal(str(seconds)) * Decimal(str(settings.TANDEM_AGENT_HOUR_USD)) / 3600


def summary(figures: dict[str, Any], per_message: Decimal, people_per_message: float = 0.0) -> dict[str, Any]:
    """The console's figures for one sum of rollups (a range, an hour or a day). `per_message`: a
    message's large-model cost for the all-large baseline; `people_per_message`: agents' seconds on a
    message for the all-people one."""
    messages: int = figures.get("messages", 0)
    answered = {str(tier): figures.get("answered", {}).get(str(tier), 0) for tier in _TIERS}
    delivered = sum(answered.values())
    cost = {tier: Decimal(figures.get("cost_usd", {}).get(tier, "0")) for tier in ("small", "large")}
    total_usd = cost["small"] + cost["large"]  # agents' replies use no model tokens
    reasons = sorted(figures.get("escalations", {}).items(), key=lambda item: (-item[1], item[0]))
    large_count = figures.get("large_answers", [0, 0, 0])[0]
    # Customer messages the large model answered count at their real cost; the others at the estimate.
    baseline = cost["large"] + per_message * max(messages - large_count, 0)
    started, with_people = figures.get("conversations", [0, 0])
    destinations = {name: figures.get("destinations", {}).get(name, 0) for name in rollups.DESTINATIONS}
    agent_seconds = figures.get("agent_seconds", 0)
    people_usd = _people_usd(agent_seconds)
    with_people_usd = total_usd + people_usd
    return {
        "messages": messages,
        "answered": answered,
        "share_answered": {tier: _share(n, delivered) for tier, n in answered.items()},
        "destinations": destinations,
        "share_destinations": {name: _share(n, messages) for name, n in destinations.items()},
        "escalation_rate": _share(sum(n for _, n in reasons), messages),
        "escalations_by_reason": dict(reasons),
        "cost_usd": {"small": _usd(cost["small"]), "large": _usd(cost["large"]), "total": _usd(total_usd)},
        "baseline_all_large_usd": _usd(baseline),
        "savings_usd": _usd(baseline - total_usd),
        "conversations": {"started": started, "with_people": with_people, "bot_only": started - with_people},
        # People priced by their time (TANDEM_AGENT_HOUR_USD): models and people together, per
        # conversation, and against every message answered by a person.
        "people": {"agent_seconds": agent_seconds, "usd": _usd(people_usd)},
        "cost_with_people_usd": _usd(with_people_usd),
        "cost_per_conversation_usd": _usd(with_people_usd / started) if started else 0.0,
        "all_people_usd": _usd(_people_usd(people_per_message * messages)),
        "latency_ms": {kind: _latency(figures, kind) for kind in rollups.LATENCIES},
        # Every tier and destination, rated or not: each bucket of a series has the same keys.
        "ratings": {tier: _rated(figures.get("ratings", {}).get(tier, [0, 0])) for tier in rollups.RATED_TIERS},
        "ratings_by_destination": {
            name: _rated(figures.get("ratings_by_destination", {}).get(name, [0, 0])) for name in rollups.DESTINATIONS
        },
        "conversation_ratings": _rated(figures.get("conversation_ratings", [0, 0])),
    }


def _latency(figures: dict[str, Any], kind: str) -> dict[str, Any]:
    counts = figures.get("latency", {}).get(kind, [])
    p50, p95 = rollups.percentiles(counts, (0.5, 0.95))
    return {
        "answers": sum(counts),
        "p50": round(p50) if p50 is not None else None,
        "p95": round(p95) if p95 is not None else None,
    }


def _rated(pair: list[int]) -> dict[str, Any]:
    up, down = pair
    return {"up": up, "down": down, "share_up": up / (up + down) if up + down else None}


def compute_stats(date_from: date, date_to: date) -> dict[str, Any]:
    """Counts, tier shares, escalations and costs of the customer messages created between the two
    dates (inclusive), and of what became of them (their answers, whenever they came).

    `baseline_all_large_usd`: see BASELINE_METHOD. `savings_usd` is that baseline minus the real total.
    """
    return report(date_from, date_to)[0]


def series(date_from: date, date_to: date, step: str) -> list[dict[str, Any]]:
    """The same figures per hour or per day ("hour" / "day", in settings.TIME_ZONE) over the range,
    every bucket present (zeros where nothing happened). The baseline's estimate per message is the
    range's, so the buckets' baselines add up to the range's."""
    return report(date_from, date_to, step)[1]


def report(date_from: date, date_to: date, step: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(compute_stats, series) from one read of the rollups (no series without a step): the range's
    figures are the sum of its day rollups, an hourly series reads the hour rollups too."""
    days = rollups.days(date_from, date_to)
    total: dict[str, Any] = {}
    for day_rollup in days:
        rollups.add(total, day_rollup.figures)
    large = baseline_per_message(total.get("large_answers", [0, 0, 0]))
    per_message, large_model = large.usd_per_message, large.model
    people_per_message = people_seconds_per_message(total)
    stats = {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        **summary(total, per_message, people_per_message),
        "large_model": large_model,
    }
    if step == "hour":
        return stats, _hourly(date_from, date_to, per_message, people_per_message)
    buckets: dict[str, dict[str, Any]] = {}
    if step == "day":
        day = date_from
        while day <= date_to:
            buckets[day.isoformat()] = {}
            day += timedelta(days=1)
        for day_rollup in days:
            buckets[day_rollup.day.isoformat()] = day_rollup.figures
    return stats, [
        {"start": start, **summary(figures, per_message, people_per_message)} for start, figures in buckets.items()
    ]


# What summary() made of an hour's figures, by (hour, its rollup's computed_at, the baseline's and the
# all-people comparison's prices): an hourly series of a month is 720 summaries, most of them of hours
# that have not changed since the last request. Kept per process, the most recently used first out.
_hour_summaries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
HOUR_SUMMARIES_KEPT = 5000
# Django runs views in threads: the cache's order is changed under a lock.
_hour_summaries_lock = threading.Lock()


def _hourly(date_from: date, date_to: date, per_message: Decimal, people_per_message: float) -> list[dict[str, Any]]:
    """The hourly series: a bucket for every local hour of the range (zeros where nothing happened),
    each hour summarised once for as long as its rollup and the prices stay the same."""
    prices = (per_message, people_per_message, settings.TANDEM_AGENT_HOUR_USD)
    zone = timezone.get_current_timezone()
    labels: dict[str, list[tuple[datetime, datetime]]] = {}
    label_of: dict[datetime, str] = {}
    first, end = rollups.day_hours(date_from)[0], rollups.day_hours(date_to)[1]
    hour = first
    while hour < end:
        label = label_of[hour] = hour.astimezone(zone).strftime("%Y-%m-%d %H:00")
        labels[label] = []
        hour += rollups.HOUR
    versions = rollups.hour_versions(date_from, date_to)
    for hour, computed_at in versions:
        # Two UTC hours in one local hour when the clock goes back: the bucket is their sum.
        labels[label_of[hour]].append((hour, computed_at))
    cache = _hour_summaries
    wanted = [hour for members in labels.values() for hour, at in members if (hour, at, *prices) not in cache]
    figures = rollups.hour_figures(wanted) if wanted else {}
    buckets = []
    for label, members in labels.items():
        if len(members) <= 1:
            # An hour without traffic is summarised once too (the key of no rollup).
            key = (*(members[0] if members else (None, None)), *prices)
            with _hour_summaries_lock:
                made = cache.get(key)
                if made is not None:
                    cache.move_to_end(key)
            if made is None:
                made = summary(_figures_of(members, figures), per_message, people_per_message)
                with _hour_summaries_lock:
                    cache[key] = made
                    if len(cache) > HOUR_SUMMARIES_KEPT:
                        cache.popitem(last=False)
        else:
            made = summary(_figures_of(members, figures), per_message, people_per_message)
        buckets.append({"start": label, **made})
    return buckets


def _figures_of(members: list[tuple[datetime, datetime]], figures: dict[datetime, dict[str, Any]]) -> dict[str, Any]:
    """The figures of a local hour's rollups (read now if another thread's request dropped one's summary
    from the cache meanwhile); their sum where there are two."""
    missing = [hour for hour, _ in members if hour not in figures]
    if missing:
        figures = {**figures, **rollups.hour_figures(missing)}
    # (A rollup deleted meanwhile, its conversations erased: nothing.)
    if len(members) == 1:
        return figures.get(members[0][0], {})
    total: dict[str, Any] = {}
    for hour, _ in members:
        rollups.add(total, figures.get(hour, {}))
    return total


SMALL_TALK = "small talk"
NO_INTENT = "(no intent)"


def by_intent(date_from: date, date_to: date) -> list[dict[str, Any]]:
    """One row per intent over the range (small talk as one row, and messages with no intent), most
    messages first: volume, where the router sent them, escalations and their top reason, and what
    agents' spot checks found of the small tier's answers on it."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rollups.intent_days(date_from, date_to):
        key = NO_INTENT if not row.intent else SMALL_TALK if is_small_talk(row.intent) else row.intent
        rollups.add(totals.setdefault(key, {}), row.figures)
    everything = sum(figures.get("messages", 0) for figures in totals.values())
    rows = []
    for intent, figures in totals.items():
        messages = figures.get("messages", 0)
        escalations = figures.get("escalations", {})
        top = rollups.top(escalations)
        checked, right = figures.get("checked", 0), figures.get("right", 0)
        rows.append(
            {
                "intent": intent,
                "messages": messages,
                "share": _share(messages, everything),
                "small_share": _share(figures.get("destinations", {}).get("small", 0), messages),
                "escalation_rate": _share(sum(escalations.values()), messages),
                "top_reason": top[0] if top else "",
                "top_reason_count": top[1] if top else 0,
                "checked": checked,
                "accuracy": right / checked if checked else None,
                **{
                    f"rated_{key}": value
                    for key, value in _rated(
                        [sum(pair[side] for pair in figures.get("ratings", {}).values()) for side in (0, 1)]
                    ).items()
                },
            }
        )
    rows.sort(key=lambda row: (-row["messages"], row["intent"]))
    return rows
