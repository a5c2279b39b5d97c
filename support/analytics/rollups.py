"""The console's figures, rolled up so that a month of a busy site reads fast, and kept right.

Everything is counted against the customer message it concerns, in the hour that message was created:
its destination and escalation reason, the answers it got (how many, what they cost), and later what an
agent said about it (spot checks). Conversations count in the hour they started. So a rollup is a pure
function of the messages of its hour, and any change to one of them — a new message, an answer
arriving minutes later, a label given next week, a conversation deleted — marks that hour stale
(StaleHour, from the signal receivers at the bottom, which every save and delete of a message, label
or conversation, and every note or hand-back, goes through). `refresh()` rebuilds stale hours from the
messages (with the rollups of the conversations that started in them, and, summed from the hours, the
rollups of the days they fall in, in all and by intent); the console calls it before it reads, and the
beat schedule every minute, so what the console shows is always what the messages say.

Hours are UTC hours; days are calendar days in settings.TIME_ZONE, made of the hours that start in
them (exact for every zone whose offset is a whole number of hours). After changing TIME_ZONE, run
`manage.py rollups --rebuild`.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from support.analytics.models import ConversationRollup, DayRollup, HourRollup, IntentDayRollup, StaleHour
from support.conversations.models import Conversation, Message, Role, Tier

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DESTINATIONS = ("small", "large", "people")
# The messages that mean people handled a conversation: a customer message sent to people, an agent's reply.
PEOPLE = Q(role=Role.CUSTOMER, destination="people") | Q(tier=Tier.AGENT)
# Answer times kept as histograms (percentiles of a range add up from them): a small-tier answer, the
# large model's first token and whole answer, and an agent's reply (Message.latency_ms, first_token_ms).
LATENCIES = ("small", "large_first_token", "large", "agent")
# The tiers whose answers customers rate.
RATED_TIERS = ("small", "large", "agent")
# What the by-intent table reads (the rest stays in the hour rollups: intent rows are many).
INTENT_FIGURES = ("messages", "destinations", "escalations", "checked", "right", "ratings")
# Upper bounds of the buckets in milliseconds (the last one is open): about 2.5 buckets a decade from
# 1 ms to an hour, so a percentile read from them is within about 25 % of the true one.
LATENCY_BOUNDS = [
    1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200, 300, 500, 800, 1_200, 2_000, 3_000, 5_000, 8_000,
    12_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_200_000, 3_600_000, 2**62,
]  # fmt: skip


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def local_day(hour: datetime) -> date:
    return timezone.localtime(hour).date()


def day_hours(day: date) -> tuple[datetime, datetime]:
    """The UTC hours [first, end) that make up a local calendar day."""
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), zone)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone)
    first = hour_of(start)
    if first < start:  # a zone with a half-hour offset: the day starts with the next whole hour
        first += HOUR
    last = hour_of(end)
    if last < end:
        last += HOUR
    return first, last


# Marking ----------------------------------------------------------------------------------------------


def mark(moments: Iterable[datetime | None]) -> None:
    """The hours of these moments no longer match their rollups."""
    hours = {hour_of(moment) for moment in moments if moment is not None}
    if not hours:
        return
    now = timezone.now()
    StaleHour.objects.bulk_create(
        [StaleHour(hour=hour, marked_at=now) for hour in sorted(hours)],
        update_conflicts=True,
        unique_fields=["hour"],
        update_fields=["marked_at"],
    )


def mark_messages(message_ids: Iterable[int]) -> None:
    """The hours of these messages and of their conversations' starts (for writes that bypass the
    signals: bulk updates)."""
    moments = Message.objects.filter(pk__in=list(message_ids)).values_list("created_at", "conversation__created_at")
    mark(moment for pair in moments for moment in pair)


def _created_at(instance: Message, field: str, model: type[Any], pk: Any) -> list[datetime]:
    """The created_at of a related row: from the object already loaded (no query), else read."""
    if pk is None:
        return []
    if Message._meta.get_field(field).is_cached(instance):  # type: ignore[union-attr]
        return [getattr(instance, field).created_at]
    return list(model.objects.filter(pk=pk).values_list("created_at", flat=True))


def _message_saved(instance: Message, **_: Any) -> None:
    # An answer counts against the message it answers, and may make its conversation one with people.
    mark(
        [
            instance.created_at,
            *_created_at(instance, "reply_to", Message, instance.reply_to_id),
            *_created_at(instance, "conversation", Conversation, instance.conversation_id),
        ]
    )


def _label_saved(instance: Any, **_: Any) -> None:
    mark(Message.objects.filter(pk=instance.message_id).values_list("created_at", flat=True))


def _rating_saved(instance: Any, **_: Any) -> None:
    # A message's rating counts in its hour; a conversation's, in the hour the conversation started.
    if instance.message_id is not None:
        mark(Message.objects.filter(pk=instance.message_id).values_list("created_at", flat=True))
    else:
        mark(Conversation.objects.filter(pk=instance.conversation_id).values_list("created_at", flat=True))


def _conversation_changed(
    instance: Conversation, created: bool = True, update_fields: Iterable[str] | None = None, **_: Any
) -> None:
    # Started (it counts in its hour, with no message yet), deleted, or its state changed (the
    # conversation list shows it).
    if created or update_fields is None or "owner" in update_fields:
        mark([instance.created_at])


def _conversation_work(instance: Any, **_: Any) -> None:
    """A note, or a hand-back or close (system event): the agent's time on the conversation changed."""
    if getattr(instance, "type", "system") == "system":
        mark(Conversation.objects.filter(pk=instance.conversation_id).values_list("created_at", flat=True))


def connect() -> None:
    from support.review.models import Label

    for signal in (post_save, post_delete):
        signal.connect(_message_saved, sender=Message, dispatch_uid=f"rollups-message-{signal}")
        signal.connect(_label_saved, sender=Label, dispatch_uid=f"rollups-label-{signal}")
    for signal in (post_save, post_delete):
        signal.connect(_conversation_changed, sender=Conversation, dispatch_uid=f"rollups-conversation-{signal}")
    from support.conversations.models import Event, Rating
    from support.review.models import Note

    for signal in (post_save, post_delete):
        signal.connect(_rating_saved, sender=Rating, dispatch_uid=f"rollups-rating-{signal}")
    for sender in (Event, Note):
        post_save.connect(_conversation_work, sender=sender, dispatch_uid=f"rollups-work-{sender.__name__}")


# Building ---------------------------------------------------------------------------------------------


def _destination(value: str) -> str:
    # A message that waited for the agent who owned the conversation (no destination) went to people.
    return value if value in DESTINATIONS else "people"


def _usd(value: Decimal | None) -> str:
    return str(value or Decimal(0))


def _blank_figures() -> dict[str, Any]:
    return {
        "messages": 0,
        "destinations": dict.fromkeys(DESTINATIONS, 0),
        "escalations": {},
        "answered": {"small": 0, "large": 0, "agent": 0},
        "cost_usd": {"small": "0", "large": "0"},
        "large_answers": [0, 0, 0],
        "checked": 0,
        "right": 0,
        # Customers' ratings of the answers to these messages: [thumbs up, thumbs down], by the tier of
        # the answer rated and by where the router sent the question.
        "ratings": {tier: [0, 0] for tier in RATED_TIERS},
        "ratings_by_destination": {name: [0, 0] for name in DESTINATIONS},
        # Answer times: counts per LATENCY_BOUNDS bucket (see percentile()).
        "latency": {kind: [0] * len(LATENCY_BOUNDS) for kind in LATENCIES},
        # And their sums (a Prometheus histogram has one: support/metrics.py).
        "latency_sum_ms": dict.fromkeys(LATENCIES, 0),
        # Customer messages the router sent nowhere (they waited for the agent who owned the
        # conversation): counted with people above, apart here.
        "unrouted": 0,
    }


def _figures(customer: QuerySet[Message]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Figures of these customer messages: (all of them, and INTENT_FIGURES by intent)."""
    total = _blank_figures()
    intents: dict[str, dict[str, Any]] = {}

    def entry(intent: str) -> dict[str, Any]:
        if intent not in intents:
            blank = _blank_figures()
            intents[intent] = {key: blank[key] for key in INTENT_FIGURES}
        return intents[intent]

    for intent, destination, reason, n in customer.values_list("intent", "destination", "escalation_reason").annotate(
        n=Count("id")
    ):
        for item in (total, entry(intent)):
            item["messages"] += n
            item["destinations"][_destination(destination)] += n
            if reason:
                item["escalations"][reason] = item["escalations"].get(reason, 0) + n
        if destination not in DESTINATIONS:
            total["unrouted"] += n
    if not total["messages"]:
        return {}, {}

    answers = Message.objects.filter(reply_to__in=customer.values("pk"))
    for row in answers.values("tier").annotate(
        # A multi-part message gets one small answer per part: it counts once, as one message answered.
        answered=Count("reply_to", distinct=True, filter=Q(delivered=True)),
        usd=Sum("cost_usd"),
        n=Count("id"),
        tokens_in=Sum("input_tokens"),
        tokens_out=Sum("output_tokens"),
    ):
        tier = row["tier"]
        if tier in total["answered"]:
            total["answered"][tier] += row["answered"]
        if tier in (Tier.SMALL, Tier.LARGE):
            # Undelivered drafts count in cost: the model ran and was paid for.
            total["cost_usd"][tier] = _usd(Decimal(total["cost_usd"][tier]) + (row["usd"] or Decimal(0)))
        if tier == Tier.LARGE:
            total["large_answers"] = [row["n"], row["tokens_in"] or 0, row["tokens_out"] or 0]

    from support.conversations.models import Rating

    for intent, tier, destination, score, n in (
        Rating.objects.filter(message__in=customer.values("pk"))
        .values_list("message__intent", "tier", "destination", "score")
        .annotate(n=Count("pk"))
    ):
        side = 0 if score > 0 else 1
        for item in (total, entry(intent)):
            if tier in item["ratings"]:
                item["ratings"][tier][side] += n
        total["ratings_by_destination"][_destination(destination)][side] += n

    histograms, sums = total["latency"], total["latency_sum_ms"]
    for tier, latency, first_token in answers.filter(
        Q(latency_ms__isnull=False) | Q(first_token_ms__isnull=False)
    ).values_list("tier", "latency_ms", "first_token_ms"):
        if tier == Tier.LARGE:
            if first_token is not None:
                histograms["large_first_token"][bucket(first_token)] += 1
                sums["large_first_token"] += first_token
            if latency is not None:
                histograms["large"][bucket(latency)] += 1
                sums["large"] += latency
        elif tier in ("small", "agent") and latency is not None:
            histograms[tier][bucket(latency)] += 1
            sums[tier] += latency

    from support.review.models import Label

    # What agents found when they spot-checked the small tier's answers (a random sample).
    checks = Label.objects.filter(spot_check=True, message__in=customer.values("pk"))
    for intent, n, right in checks.values_list("message__intent").annotate(
        n=Count("id"), right=Count("id", filter=Q(article=F("message__intent")))
    ):
        for item in (total, entry(intent)):
            item["checked"] += n
            item["right"] += right
    return total, intents


def bucket(milliseconds: int) -> int:
    """The LATENCY_BOUNDS bucket of a time: the first whose upper bound it does not exceed."""
    return bisect.bisect_left(LATENCY_BOUNDS, milliseconds)


def percentile(counts: list[int], share: float) -> float | None:
    """The time under which `share` of the counted answers came (linear within the bucket it falls in;
    the last, open bucket reports its lower bound). None without answers."""
    return percentiles(counts, (share,))[0]


def percentiles(counts: list[int], shares: tuple[float, ...]) -> list[float | None]:
    """percentile() for each of these shares, from one running sum of the buckets."""
    total = sum(counts)
    if not total:
        return [None] * len(shares)
    running = list(itertools.accumulate(counts))
    found: list[float | None] = []
    for share in shares:
        wanted = share * total
        # The first bucket that reaches it (never an empty one: for a share of 0, the first with answers).
        index = bisect.bisect_left(running, wanted) if wanted > 0 else bisect.bisect_right(running, 0)
        if index >= len(counts):
            found.append(float(LATENCY_BOUNDS[-2]))
            continue
        low = LATENCY_BOUNDS[index - 1] if index else 0
        if index >= len(LATENCY_BOUNDS) - 1:
            found.append(float(low))
        else:
            seen = running[index] - counts[index]
            found.append(low + (LATENCY_BOUNDS[index] - low) * (wanted - seen) / counts[index])
    return found


def conversation_ratings(start: datetime, end: datetime) -> list[int]:
    """[up, down] of the ratings of whole conversations started in [start, end)."""
    from support.conversations.models import Rating

    counts = Rating.objects.filter(
        message__isnull=True, conversation__created_at__gte=start, conversation__created_at__lt=end
    ).aggregate(up=Count("pk", filter=Q(score__gt=0)), down=Count("pk", filter=Q(score__lt=0)))
    return [counts["up"], counts["down"]]


def agent_seconds(conversations: QuerySet[Conversation]) -> int:
    """How long agents worked on these conversations, from what the desk stored: their replies, drafts
    they sent or rejected, internal notes, hand-backs and closes. Consecutive actions on a conversation
    less than TANDEM_AGENT_IDLE_SECONDS apart are one stretch of work (the time between them counts);
    each stretch also counts TANDEM_AGENT_READ_SECONDS for reading up before its first action."""
    from django.conf import settings

    from support.conversations.models import Event
    from support.review.models import Note

    ids = conversations.values("pk")
    moments: dict[Any, list[datetime]] = {}
    # Four small queries: as one UNION ALL, PostgreSQL plans a parallel append whose workers take
    # longer to start (~15 ms here) than the four queries take to run.
    for query in (
        Message.objects.filter(conversation__in=ids, role=Role.AGENT).values_list("conversation_id", "created_at"),
        Message.objects.filter(conversation__in=ids, reviewed_at__isnull=False).values_list(
            "conversation_id", "reviewed_at"
        ),
        Note.objects.filter(conversation__in=ids).values_list("conversation_id", "created_at"),
        Event.objects.filter(conversation__in=ids, type="system").values_list("conversation_id", "created_at"),
    ):
        for conversation, moment in query:
            if moment is not None:
                moments.setdefault(conversation, []).append(moment)
    idle, read = settings.TANDEM_AGENT_IDLE_SECONDS, settings.TANDEM_AGENT_READ_SECONDS
    total = 0.0
    for times in moments.values():
        times.sort()
        total += read
        for before, after in zip(times, times[1:], strict=False):
            gap = (after - before).total_seconds()
            total += gap if gap <= idle else read
    return round(total)


def _customer(start: datetime, end: datetime) -> QuerySet[Message]:
    return Message.objects.filter(role=Role.CUSTOMER, created_at__gte=start, created_at__lt=end)


def rebuild_hour(hour: datetime) -> None:
    """Rebuild an hour's rollup (its figures in all and by intent) and the rollups of the conversations
    that started in it."""
    figures, intents = _figures(_customer(hour, hour + HOUR))
    conversations, lines, keys = rebuild_conversations(hour, hour + HOUR)
    if not figures and not conversations[0]:
        HourRollup.objects.filter(hour=hour).delete()
        return
    figures["conversations"] = conversations
    figures["conversation_ratings"] = conversation_ratings(hour, hour + HOUR)
    figures["agent_seconds"] = agent_seconds(
        Conversation.objects.filter(created_at__gte=hour, created_at__lt=hour + HOUR)
    )
    HourRollup.objects.bulk_create(
        [
            HourRollup(
                hour=hour,
                figures=figures,
                intents=intents,
                conversation_lines=lines,
                conversation_keys=keys,
                computed_at=timezone.now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["hour"],
        update_fields=["figures", "intents", "conversation_lines", "conversation_keys", "computed_at"],
    )


def rebuild_day(day: date) -> None:
    """A day's rollup and its intent rows: the sums of its hours' (rebuild those first)."""
    first, end = day_hours(day)
    total: dict[str, Any] = {}
    figures: dict[str, dict[str, Any]] = {}
    for hour, intents in HourRollup.objects.filter(hour__gte=first, hour__lt=end).values_list("figures", "intents"):
        add(total, hour)
        for intent, item in intents.items():
            add(figures.setdefault(intent, {}), item)
    # Only what changed is written: under live traffic, one or two intents of the day. (The caller,
    # refresh(), holds the transaction.)
    stored = dict(IntentDayRollup.objects.filter(day=day).values_list("intent", "figures"))
    if total:
        DayRollup.objects.bulk_create(
            [DayRollup(day=day, figures=total)], update_conflicts=True, unique_fields=["day"], update_fields=["figures"]
        )
    else:
        DayRollup.objects.filter(day=day).delete()
    gone = set(stored) - set(figures)
    if gone:
        IntentDayRollup.objects.filter(day=day, intent__in=gone).delete()
    IntentDayRollup.objects.bulk_create(
        [
            IntentDayRollup(day=day, intent=intent, figures=item)
            for intent, item in figures.items()
            if stored.get(intent) != item
        ],
        update_conflicts=True,
        unique_fields=["day", "intent"],
        update_fields=["figures"],
    )


def route_token(intent: str, destination: str) -> str:
    """How ConversationRollup.routes names a customer message: "<intent>><destination>" (either may be
    empty), between "|" separators."""
    return f"{intent.replace('|', '/').replace('>', '/')}>{destination}"


_BLANK_CONVERSATION = {"customer": 0, "people": 0, "cost": Decimal(0), **{f"to_{d}": 0 for d in DESTINATIONS}}
# A conversation rollup's cost has the decimal places of its field: a sum of costs with more (SQLite
# keeps what a message was given) is rounded to them, so that it compares equal to what was stored.
_COST_PLACES = Decimal(1).scaleb(-ConversationRollup._meta.get_field("cost_usd").decimal_places)  # type: ignore[union-attr]


def _blank_conversation() -> dict[str, Any]:
    return {**_BLANK_CONVERSATION, "routes": set()}


CSV_HEADER = "conversation,started,state,customer_messages,with_people,cost_usd\r\n"


def conversation_key(people_messages: int, routes: str) -> str:
    """What the conversation list's filters read of a conversation: "y" if people handled it, else "n",
    then its routes ("|intent>destination|…")."""
    return ("y" if people_messages else "n") + routes


def rebuild_conversations(start: datetime, end: datetime) -> tuple[list[int], str, str]:
    """The rollups of the conversations started in [start, end): their messages counted and costed,
    their routes, and their CSV row made (CSV_HEADER: the conversation, when it started in the site's
    time zone, its state, customer messages, with people or not, model cost). Returns ([conversations
    started, how many of them people handled], their CSV lines newest first as the export lists them,
    their conversation_key()s in the same order, a line each)."""
    figures: dict[Any, dict[str, Any]] = {}
    for row in (
        Message.objects.filter(conversation__created_at__gte=start, conversation__created_at__lt=end)
        .order_by()
        .values_list("conversation", "role", "intent", "destination")
        .annotate(n=Count("pk"), people=Count("pk", filter=PEOPLE), cost=Sum("cost_usd"))
    ):
        conversation, role, intent, destination, n, people, cost = row
        item = figures.get(conversation)
        if item is None:
            item = figures[conversation] = _blank_conversation()
        item["people"] += people
        item["cost"] += cost or 0
        if role == Role.CUSTOMER:
            item["customer"] += n
            item["routes"].add(route_token(intent, destination))
            if destination in DESTINATIONS:
                item[f"to_{destination}"] += n
    zone = timezone.get_default_timezone()
    empty = _blank_conversation()
    # Each conversation's CONVERSATION_FIELDS, as its rollup should have them.
    made: dict[Any, tuple[Any, ...]] = {}
    started = Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
    for pk, created_at, owner in started.values_list("pk", "created_at", "owner"):
        item = figures.get(pk, empty)
        started_at = created_at.astimezone(zone).isoformat(timespec="seconds")
        people = "yes" if item["people"] else "no"
        cost = item["cost"].quantize(_COST_PLACES)
        made[pk] = (
            created_at,
            owner,
            item["customer"],
            item["to_small"],
            item["to_large"],
            item["to_people"],
            item["people"],
            cost,
            "|" + "".join(f"{token}|" for token in sorted(item["routes"])),
            f"{pk},{started_at},{owner},{item['customer']},{people},{cost:.8f}",
        )
    # Only what changed is written (under live traffic, a conversation or two of the hour), compared
    # field by field with what is stored (no model instance made of the rows that stay).
    stored = {
        pk: tuple(values)
        for pk, *values in ConversationRollup.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "conversation_id", *CONVERSATION_FIELDS
        )
    }
    gone = set(stored) - set(made)
    if gone:
        ConversationRollup.objects.filter(conversation__in=gone).delete()
    ConversationRollup.objects.bulk_create(
        [
            ConversationRollup(conversation_id=pk, **dict(zip(CONVERSATION_FIELDS, values, strict=True)))
            for pk, values in made.items()
            if stored.get(pk) != values
        ],
        update_conflicts=True,
        unique_fields=["conversation"],
        update_fields=CONVERSATION_FIELDS,
    )
    newest_first = sorted(made.items(), key=lambda pair: (pair[1][0], pair[0]), reverse=True)
    people_at, routes_at, line_at = (CONVERSATION_FIELDS.index(name) for name in ("people_messages", "routes", "line"))
    lines = "".join(f"{values[line_at]}\r\n" for _, values in newest_first)
    keys = "".join(f"{conversation_key(values[people_at], values[routes_at])}\n" for _, values in newest_first)
    return [len(made), sum(1 for values in made.values() if values[people_at])], lines, keys


CONVERSATION_FIELDS = (
    "created_at", "owner", "customer_messages", "to_small", "to_large", "to_people", "people_messages", "cost_usd",
    "routes", "line",
)  # fmt: skip


def refresh(batch: int | None = None, within: tuple[datetime, datetime] | None = None) -> int:
    """Rebuild stale hours (oldest first; `batch` at most; only those `within` [start, end) if given) and
    their days. Returns how many."""
    query = StaleHour.objects.order_by("hour")
    if within is not None:
        query = query.filter(hour__gte=within[0], hour__lt=within[1])
    stale = list(query.values_list("hour", "marked_at")[:batch])
    if not stale:
        return 0
    days: set[date] = set()
    # One transaction for the batch: on SQLite, one write to disk instead of one per row.
    with transaction.atomic():
        for hour, _ in stale:
            rebuild_hour(hour)
            days.add(local_day(hour))
        for day in sorted(days):
            rebuild_day(day)
        for hour, marked_at in stale:
            # Marked again meanwhile: stays stale for the next refresh.
            StaleHour.objects.filter(hour=hour, marked_at=marked_at).delete()
    return len(stale)


def refresh_all() -> int:
    done = 0
    while rebuilt := refresh(batch=500):
        done += rebuilt
    return done


def rebuild_all() -> int:
    """Mark every hour with a message or a conversation stale and rebuild them all (after a bulk import,
    or a change of TIME_ZONE)."""
    HourRollup.objects.all().delete()
    IntentDayRollup.objects.all().delete()
    DayRollup.objects.all().delete()
    ConversationRollup.objects.all().delete()
    hours = set(
        Message.objects.annotate(hour=TruncHour("created_at", tzinfo=UTC)).values_list("hour", flat=True).distinct()
    )
    hours |= set(
        Conversation.objects.annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values_list("hour", flat=True)
        .distinct()
    )
    for chunk in _chunks(sorted(hours), 1000):
        mark(chunk)
    rebuilt = refresh_all()
    # The tables were filled anew: the query planner's statistics of them are out of date (PostgreSQL
    # would read a month's conversation rollups by a full scan until its autovacuum came by). Outside a
    # transaction PostgreSQL also vacuums them, so reads that need only the index do not visit the table.
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    with connection.cursor() as cursor:
        for model in (HourRollup, DayRollup, IntentDayRollup, ConversationRollup):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"VACUUM ANALYZE {table}" if vacuum else f"ANALYZE {table}")
    return rebuilt


def _chunks(items: list[datetime], size: int) -> Iterator[list[datetime]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Reading ----------------------------------------------------------------------------------------------


def _span(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    return day_hours(date_from)[0], day_hours(date_to)[1]


def hour_versions(date_from: date, date_to: date) -> list[tuple[datetime, datetime]]:
    """(hour, computed_at) of the hour rollups of the local days date_from..date_to (inclusive), oldest
    first, up to date (every stale hour of the range is rebuilt first). computed_at changes whenever
    the hour's figures do: a reader that kept what it made of them may use it again."""
    start, end = _span(date_from, date_to)
    refresh(within=(start, end))
    return list(
        HourRollup.objects.filter(hour__gte=start, hour__lt=end).order_by("hour").values_list("hour", "computed_at")
    )


def hour_figures(hours: list[datetime]) -> dict[datetime, dict[str, Any]]:
    """The figures of these hours' rollups (as they are now: read hour_versions() first)."""
    found: dict[datetime, dict[str, Any]] = {}
    for chunk in _chunks(sorted(hours), 500):
        found.update(HourRollup.objects.filter(hour__in=chunk).values_list("hour", "figures"))
    return found


def days(date_from: date, date_to: date) -> list[DayRollup]:
    """The day rollups of the range, oldest first, up to date."""
    refresh(within=_span(date_from, date_to))
    return list(DayRollup.objects.filter(day__gte=date_from, day__lte=date_to).order_by("day"))


def intent_days(date_from: date, date_to: date) -> list[IntentDayRollup]:
    """The day-and-intent rollups of the range, up to date."""
    refresh(within=_span(date_from, date_to))
    return list(IntentDayRollup.objects.filter(day__gte=date_from, day__lte=date_to))


def conversations(start: datetime, end: datetime) -> QuerySet[ConversationRollup]:
    """The rollups of the conversations started in [start, end), up to date."""
    refresh(within=(hour_of(start), end))
    return ConversationRollup.objects.filter(created_at__gte=start, created_at__lt=end)


def conversation_lines(
    start: datetime, end: datetime, keep: Callable[[str], bool] | None = None, hours_at_once: int = 48
) -> Iterator[str]:
    """The CSV lines of the conversations started in [start, end), newest first, up to date; with
    `keep`, only those whose conversation_key() it keeps (the list's filters). They come from the hour
    rollups' conversation_lines (and conversation_keys) of the whole hours inside, and from the
    conversations' rows at either end where the range starts or ends within an hour (a time zone with a
    half-hour offset). A few dozen hours at a time, a string of lines each (memory stays bounded
    however long the range)."""
    refresh(within=(hour_of(start), end))
    first = hour_of(start)
    if first < start:
        first += HOUR
    last = max(hour_of(end), first)
    rows = ConversationRollup.objects.order_by("-created_at", "-conversation_id")

    def edge(since: datetime, until: datetime) -> str:
        found = rows.filter(created_at__gte=since, created_at__lt=until)
        return "".join(
            f"{line}\r\n"
            for line, people, routes in found.values_list("line", "people_messages", "routes")
            if keep is None or keep(conversation_key(people, routes))
        )

    if last < end:
        yield edge(last, end)
    until = last
    while until > first:
        since = max(first, until - hours_at_once * HOUR)
        hours = HourRollup.objects.filter(hour__gte=since, hour__lt=until).order_by("-hour")
        if keep is None:
            yield "".join(hours.values_list("conversation_lines", flat=True))
        else:
            kept: list[str] = []
            for lines, keys in hours.values_list("conversation_lines", "conversation_keys"):
                if lines:
                    pairs = zip(lines.split("\r\n")[:-1], keys.split("\n")[:-1], strict=True)
                    kept += [f"{line}\r\n" for line, key in pairs if keep(key)]
            yield "".join(kept)
        until = since
    if start < first:
        yield edge(start, min(first, end))


def add(total: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Add a figure dict into `total` (counts add up, money as decimals, dicts and lists key by key)."""
    for key, value in item.items():
        kind = type(value)
        if kind is dict:
            add(total.setdefault(key, {}), value)
        elif kind is list:
            mine = total.get(key)
            total[key] = list(value) if mine is None else list(map(operator.add, mine, value))
        elif kind is str:
            total[key] = _usd(Decimal(total.get(key, "0")) + Decimal(value))
        else:
            total[key] = total.get(key, 0) + value
    return total


def top(counter: dict[str, int]) -> tuple[str, int] | None:
    if not counter:
        return None
    return Counter(counter).most_common(1)[0]
