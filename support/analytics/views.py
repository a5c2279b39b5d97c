"""The stats API and the staff console."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from chatbot import smalltalk
from chatbot.policy import Thresholds
from chatbot.small.model import current_meta
from support.analytics import rollups
from support.analytics.models import ConversationRollup
from support.analytics.stats import (
    BASELINE_METHOD,
    NO_INTENT,
    SMALL_TALK,
    by_intent,
    compute_stats,
    day_bounds,
    parse_range,
    report,
    series,
)
from support.knowledge import freshness
from support.permissions import agent_required, is_agent

_TIER_LABELS = {"small": "Small model", "large": "Large model", "agent": "Agent"}
LATENCY_LABELS = {
    "small": "Small model: answer (server side)",
    "large_first_token": "Large model: first token",
    "large": "Large model: whole answer",
    "agent": "Agents: reply",
}


@require_GET
def stats_api(request: HttpRequest) -> JsonResponse:
    # An API answers with status codes a script can act on, not with a redirect to a login form.
    if not request.user.is_authenticated:
        return JsonResponse({"error": "authentication required"}, status=401)
    if not is_agent(request.user):
        return JsonResponse({"error": "staff only"}, status=403)
    try:
        date_from, date_to = parse_range(request.GET.get("from"), request.GET.get("to"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(compute_stats(date_from, date_to))


def _pct(share: float) -> str:
    # Formatted here: templates would localise the decimal separator inside a CSS width.
    return f"{share * 100:.1f}"


STEPS = ("day", "hour")
# The numbers behind the charts are listed on the page up to this many buckets (the CSV has them all).
NUMBERS_SHOWN = 100
# The hourly series is offered for ranges up to this many days (more would draw thousands of bars).
HOURLY_DAYS = 31


def _step(request: HttpRequest, date_from: Any, date_to: Any) -> str:
    step = request.GET.get("step", "")
    if step not in STEPS:
        step = "hour" if (date_to - date_from).days < 3 else "day"
    if step == "hour" and (date_to - date_from).days >= HOURLY_DAYS:
        step = "day"
    return step


def _range_query(date_from: Any, date_to: Any, **more: str) -> str:
    return urlencode({"from": date_from.isoformat(), "to": date_to.isoformat(), **more})


@require_GET
@agent_required
def console(request: HttpRequest) -> HttpResponse:
    raw_from, raw_to = request.GET.get("from", ""), request.GET.get("to", "")
    context: dict[str, Any] = {
        "raw_from": raw_from,
        "raw_to": raw_to,
        "baseline_method": BASELINE_METHOD,
        "thresholds": Thresholds.current(),
        "thresholds_fixed": settings.TANDEM_CONFIDENCE_THRESHOLD is not None
        or settings.TANDEM_OOS_SIMILARITY is not None,
        "small_model": _small_model_meta(),
        "time_zone": settings.TIME_ZONE,
        "out_of_date": freshness.model_out_of_date_cached(),
    }
    try:
        date_from, date_to = parse_range(raw_from, raw_to)
    except ValueError as exc:
        context["error"] = str(exc)
        return render(request, "analytics/console.html", context, status=400)

    step = _step(request, date_from, date_to)
    stats, buckets = report(date_from, date_to, step)
    messages = stats["messages"]
    query = _range_query(date_from, date_to)
    context.update(
        stats=stats,
        date_from=stats["from"],
        date_to=stats["to"],
        step=step,
        steps=STEPS,
        series=buckets if len(buckets) <= NUMBERS_SHOWN else [],
        buckets=len(buckets),
        chart=_chart(buckets, stats),
        range_query=query,
        json_url=f"{reverse('stats-api')}?{query}",
        tiers=[
            {
                "label": _TIER_LABELS[tier],
                "count": count,
                "share_pct": _pct(stats["share_answered"][tier]),
            }
            for tier, count in stats["answered"].items()
        ],
        escalation_pct=_pct(stats["escalation_rate"]),
        latencies=[(LATENCY_LABELS[kind], stats["latency_ms"][kind]) for kind in rollups.LATENCIES],
        ratings=[(_TIER_LABELS[tier], figures) for tier, figures in stats["ratings"].items()],
        ratings_by_destination=list(stats["ratings_by_destination"].items()),
        agent_hours=f"{stats['people']['agent_seconds'] / 3600:.1f}",
        agent_hour_usd=f"{settings.TANDEM_AGENT_HOUR_USD:g}",
        idle_minutes=f"{settings.TANDEM_AGENT_IDLE_SECONDS / 60:g}",
        read_seconds=settings.TANDEM_AGENT_READ_SECONDS,
        escalated=sum(stats["escalations_by_reason"].values()),
        reasons=[
            {"reason": reason, "count": n, "pct": _pct(n / messages if messages else 0.0)}
            for reason, n in stats["escalations_by_reason"].items()
        ],
    )
    return render(request, "analytics/console.html", context)


def _chart(buckets: list[dict[str, Any]], stats: dict[str, Any]) -> dict[str, Any]:
    """The series as the console's charts draw them (static/tandem/console.js)."""
    return {
        "labels": [bucket["start"] for bucket in buckets],
        "destinations": {name: [bucket["destinations"][name] for bucket in buckets] for name in rollups.DESTINATIONS},
        "escalations": {
            reason: [bucket["escalations_by_reason"].get(reason, 0) for bucket in buckets]
            for reason in stats["escalations_by_reason"]
        },
        "escalation_rate": [round(bucket["escalation_rate"] * 100, 2) for bucket in buckets],
        "cost": {tier: [bucket["cost_usd"][tier] for bucket in buckets] for tier in ("small", "large")},
        "baseline": [bucket["baseline_all_large_usd"] for bucket in buckets],
        "conversations": {
            key: [bucket["conversations"][key] for bucket in buckets] for key in ("bot_only", "with_people")
        },
        "latency": {
            kind: {
                "p50": [bucket["latency_ms"][kind]["p50"] for bucket in buckets],
                "p95": [bucket["latency_ms"][kind]["p95"] for bucket in buckets],
            }
            for kind in rollups.LATENCIES
        },
    }


INTENT_SORTS = {
    "messages": lambda row: row["messages"],
    "intent": lambda row: row["intent"],
    "small_share": lambda row: row["small_share"],
    "escalation_rate": lambda row: row["escalation_rate"],
    "checked": lambda row: row["checked"],
    "accuracy": lambda row: (row["accuracy"] is not None, row["accuracy"] or 0.0),
    "rated": lambda row: (row["rated_share_up"] is not None, row["rated_share_up"] or 0.0),
}


@require_GET
@agent_required
def intents(request: HttpRequest) -> HttpResponse:
    """Traffic by intent over a range, sortable by any column."""
    try:
        date_from, date_to = parse_range(request.GET.get("from"), request.GET.get("to"))
    except ValueError as exc:
        return render(request, "analytics/intents.html", {"error": str(exc)}, status=400)
    sort = request.GET.get("sort", "messages")
    if sort not in INTENT_SORTS:
        sort = "messages"
    descending = request.GET.get("dir", "asc" if sort == "intent" else "desc") == "desc"
    rows = sorted(by_intent(date_from, date_to), key=INTENT_SORTS[sort], reverse=descending)
    query = _range_query(date_from, date_to)
    context = {
        "rows": rows,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "range_query": query,
        "sort": sort,
        "descending": descending,
        "columns": [
            ("intent", "Intent"),
            ("messages", "Messages"),
            ("small_share", "Answered by the small tier"),
            ("escalation_rate", "Escalated"),
            ("checked", "Spot-checked"),
            ("accuracy", "Right when checked"),
            ("rated", "Rated up"),
        ],
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "analytics/intents.html", context)


def _small_model_meta() -> dict[str, Any] | None:
    try:
        meta = current_meta()
    except (OSError, ValueError):
        # A missing or corrupt artefact must not take the console down with it.
        return None
    if meta is None:
        return None
    metrics = meta.get("metrics") or {}
    accuracy = metrics.get("holdout_accuracy")
    coverage, answered = metrics.get("holdout_coverage"), metrics.get("holdout_answered_accuracy")
    return {
        "policy": meta.get("policy"),
        "holdout_coverage": _pct(coverage) if isinstance(coverage, (int, float)) else None,
        "holdout_answered_accuracy": _pct(answered) if isinstance(answered, (int, float)) else None,
        "version": meta.get("version"),
        "encoder": meta.get("encoder"),
        "fine_tune": meta.get("fine_tune"),
        "created_at": meta.get("created_at"),
        "examples": meta.get("examples"),
        "intents": meta.get("intents"),
        "holdout_accuracy": _pct(accuracy) if isinstance(accuracy, (int, float)) else None,
    }


CONVERSATIONS_PAGE = 50


CONVERSATION_FILTERS = ("intent", "destination", "people")


def _conversation_filter(request: HttpRequest) -> Callable[[str], bool] | None:
    """What ?intent= (as the intents table names them), ?destination= and ?people=yes|no keep, as a
    test of a conversation's rollups.conversation_key(): "y" or "n" (people handled it or not), then a
    route "|intent>destination|" for each of its customer messages. None: no filter."""
    intent = request.GET.get("intent")
    destination = request.GET.get("destination")
    if destination not in rollups.DESTINATIONS:
        destination = ""
    tests: list[Callable[[str], bool]] = []
    if intent == SMALL_TALK:
        ending = re.escape(destination) + r"\|" if destination else ""
        search = re.compile(r"\|" + re.escape(smalltalk.PREFIX) + r"[^|>]*>" + ending).search
        tests.append(lambda key: search(key) is not None)
    elif intent:
        token = rollups.route_token("" if intent == NO_INTENT else intent, destination)
        route = f"|{token}|" if destination else f"|{token}"
        tests.append(lambda key: route in key)
    elif destination:
        sent = f">{destination}|"
        tests.append(lambda key: sent in key)
    people = {"yes": "y", "no": "n"}.get(request.GET.get("people", ""))
    if people:
        tests.append(lambda key: key.startswith(people))
    if len(tests) == 2:
        first, second = tests
        return lambda key: first(key) and second(key)
    return tests[0] if tests else None


def _conversation_lines(request: HttpRequest, date_from: Any, date_to: Any) -> Iterator[str]:
    """The CSV lines (rollups.CSV_HEADER) of the conversations started in the range that the request's
    filters keep, newest first, a string of many lines at a time: the page and the export read the same."""
    return rollups.conversation_lines(*day_bounds(date_from, date_to), keep=_conversation_filter(request))


@require_GET
@agent_required
def conversations(request: HttpRequest) -> HttpResponse:
    """The conversations behind the figures: those started in the range, filtered, a page at a time."""
    try:
        date_from, date_to = parse_range(request.GET.get("from"), request.GET.get("to"))
    except ValueError as exc:
        return render(request, "analytics/conversations.html", {"error": str(exc)}, status=400)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    lines = (line for chunk in _conversation_lines(request, date_from, date_to) for line in chunk.split("\r\n")[:-1])
    # The page's conversations (and whether one follows), by the first cell of their lines.
    ids = [
        line.split(",", 1)[0]
        for line in itertools.islice(lines, (page - 1) * CONVERSATIONS_PAGE, page * CONVERSATIONS_PAGE + 1)
    ]
    found = {str(pk): row for pk, row in ConversationRollup.objects.in_bulk(ids[:CONVERSATIONS_PAGE]).items()}
    filters = {key: request.GET[key] for key in CONVERSATION_FILTERS if request.GET.get(key)}
    query = _range_query(date_from, date_to, **filters)
    context = {
        # (One erased since its line was read: left out.)
        "rows": [found[pk] for pk in ids[:CONVERSATIONS_PAGE] if pk in found],
        "page": page,
        "next_page": page + 1 if len(ids) > CONVERSATIONS_PAGE else None,
        "previous_page": page - 1 if page > 1 else None,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "filters": filters,
        "range_query": query,
        "destinations": rollups.DESTINATIONS,
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "analytics/conversations.html", context)


EXPORTS = ("summary", "series", "reasons", "intents", "conversations")


@require_GET
@agent_required
def export(request: HttpRequest, table: str) -> HttpResponseBase:
    """Any table or series of the console's pages as CSV, for the range (and step, and filters) asked."""
    if table not in EXPORTS:
        return HttpResponse(
            f"No such table: choose one of {', '.join(EXPORTS)}.", status=404, content_type="text/plain"
        )
    try:
        date_from, date_to = parse_range(request.GET.get("from"), request.GET.get("to"))
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    rows: Iterable[Iterable[Any]]
    if table == "summary":
        stats = compute_stats(date_from, date_to)
        rows = [("figure", "value"), *_flatten(stats)]
    elif table == "series":
        step = _step(request, date_from, date_to)
        buckets = series(date_from, date_to, step)
        # A column for every escalation reason of the range (0 in the buckets without it), so that every
        # row has the header's columns.
        reasons = sorted({reason for bucket in buckets for reason in bucket["escalations_by_reason"]})
        columns = [
            tuple(key.split("."))
            for key, _ in _flatten({**buckets[0], "escalations_by_reason": dict.fromkeys(reasons, 0)})
        ]
        rows = [[".".join(column) for column in columns], *_cells(buckets, columns)]
    elif table == "reasons":
        stats = compute_stats(date_from, date_to)
        rows = [("reason", "messages", "share_of_messages")] + [
            (reason, n, round(n / stats["messages"], 6) if stats["messages"] else 0)
            for reason, n in stats["escalations_by_reason"].items()
        ]
    elif table == "intents":
        found = by_intent(date_from, date_to)
        keys = ["intent", "messages", "share", "small_share", "escalation_rate", "top_reason", "top_reason_count"]
        keys += ["checked", "accuracy"]
        rows = [keys, *([row[key] if row[key] is not None else "" for key in keys] for row in found)]
    else:
        lines = _conversation_lines(request, date_from, date_to)
        return _download(itertools.chain([rollups.CSV_HEADER], lines), table, date_from, date_to)
    return _download(_csv_chunks(rows), table, date_from, date_to)


def _download(chunks: Iterator[str], table: str, date_from: date, date_to: date) -> StreamingHttpResponse:
    name = f"tandem-{table}-{date_from.isoformat()}-{date_to.isoformat()}.csv"
    return StreamingHttpResponse(
        chunks,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class _Line:
    def write(self, value: str) -> str:
        return value


_writer = csv.writer(_Line())


def _csv_chunks(rows: Iterable[Iterable[Any]], lines: int = 2000) -> Iterator[str]:
    """The CSV text in chunks of `lines` rows (one chunk per row would cost more than the rows)."""
    chunk: list[str] = []
    for row in rows:
        chunk.append(_csv_line(row))
        if len(chunk) >= lines:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def _csv_line(row: Iterable[Any]) -> str:
    # Cells a spreadsheet would run as a formula are quoted as text (CSV injection).
    return str(_writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row]))


def _cells(buckets: list[dict[str, Any]], columns: list[tuple[str, ...]]) -> Iterator[list[Any]]:
    """Each bucket's values at the flattened columns' paths (0 where a bucket lacks one: an escalation
    reason). Columns of one dict come together: the dict is found once a row, not once a cell (a month's
    hourly series is 720 rows of 80 columns)."""
    groups: list[tuple[tuple[str, ...], list[str]]] = []
    for column in columns:
        if groups and groups[-1][0] == column[:-1]:
            groups[-1][1].append(column[-1])
        else:
            groups.append((column[:-1], [column[-1]]))
    for bucket in buckets:
        row: list[Any] = []
        for parent, keys in groups:
            values: Any = bucket
            for key in parent:
                values = values.get(key, {})
            row += [values.get(key, 0) for key in keys]
        yield row


def _flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    flat: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            flat += _flatten(value, f"{prefix}{key}.")
        else:
            flat.append((f"{prefix}{key}", value))
    return flat
