"""Metrics for Prometheus at /metrics, read from the database at each scrape.

Several server processes answer requests, so counters kept in one process's memory would each tell a
part of the story; the database holds all of it. Customer messages by destination and escalation
reason, and the answer times (the large model's first token and whole answer, the small model's
answer, an agent's reply), come from the console's rollups (support/analytics/rollups.py): every
day's, and the last 24 clock hours' (this one and the 23 before, rebuilt first if a message changed
them), so a scrape reads a row a day, not every message. Then two counts through indexes
(conversations waiting; large-model jobs by state) and the serving small model's metadata. What is
stored ages out with the purge of customers' data, so the message figures are gauges, not counters,
and the latency histograms may go down after a purge (Prometheus takes that for a reset). A change
to an hour older than a day (a late answer to an old question) shows once the rollups' beat task has
rebuilt it, within a minute. The large model's times are its answers' (a job that failed after its
first token is not in them).

Access: an agent's or admin's session, or `Authorization: Bearer <TANDEM_METRICS_TOKEN>`.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from chatbot.routes import Destination, Reason
from chatbot.small import model as small_model
from support.analytics import rollups
from support.analytics.models import DayRollup, HourRollup
from support.conversations.models import Conversation, JobState, LargeJob, Owner
from support.permissions import is_agent

RECENT = timedelta(hours=24)
# Seconds: from the customer's message to the large model's first token, and to its whole answer.
LATENCY_BUCKETS = (0.5, 0.8, 1.2, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 60.0, 120.0)
# Seconds, from the customer's message to the small model's answer (measured in the server from the
# moment the socket received the frame) and to an agent's reply: bounds of the rollups' buckets
# (rollups.LATENCY_BOUNDS, in milliseconds), so that each count is exact.
SMALL_BUCKETS = (0.001, 0.002, 0.005, 0.012, 0.02, 0.05, 0.12, 0.3, 0.5, 1.2)
AGENT_BUCKETS = (12.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
UNROUTED = "unrouted"
WAITING_OWNERS = (Owner.PENDING, Owner.PEOPLE)


class TandemCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        every, recent = _rolled_up()
        yield from self._messages(every, recent)
        yield from self._waiting()
        yield from self._large_jobs(every)
        yield from self._answer_times(every)
        yield from self._models()

    def _messages(self, every: dict[str, Any], recent: dict[str, Any]) -> Iterator[Metric]:
        destinations = {destination.value: [0, 0] for destination in Destination}
        destinations[UNROUTED] = [0, 0]
        reasons = {reason.value: [0, 0] for reason in Reason}
        for column, figures in enumerate((every, recent)):
            for destination, count in figures.get("destinations", {}).items():
                destinations.setdefault(destination, [0, 0])[column] += count
            # The rollups count a message the router sent nowhere with people, and apart.
            unrouted = figures.get("unrouted", 0)
            destinations[Destination.PEOPLE.value][column] -= unrouted
            destinations[UNROUTED][column] += unrouted
            for reason, count in figures.get("escalations", {}).items():
                reasons.setdefault(reason, [0, 0])[column] += count
        described = {
            "customer_messages": (
                destinations,
                "destination",
                "Customer messages stored, by where the router sent them (unrouted: to the agent who owned the "
                "conversation)",
            ),
            "escalations": (reasons, "reason", "Customer messages escalated from the small model, by reason"),
        }
        for name, (table, label, documentation) in described.items():
            every_family = GaugeMetricFamily(f"tandem_{name}", documentation + ".", labels=[label])
            recent_family = GaugeMetricFamily(
                f"tandem_{name}_24h",
                documentation + ", in the last 24 hours (whole clock hours: this one and the 23 before).",
                labels=[label],
            )
            for key, (all_stored, lately) in sorted(table.items()):
                every_family.add_metric([key], all_stored)
                recent_family.add_metric([key], lately)
            yield every_family
            yield recent_family

    def _waiting(self) -> Iterator[Metric]:
        rows = {
            owner: (count, oldest)
            for owner, count, oldest in Conversation.objects.filter(owner__in=WAITING_OWNERS)
            .order_by()
            .values_list("owner")
            .annotate(count=Count("pk"), oldest=Min("escalated_at"))
        }
        now = timezone.now()
        waiting = GaugeMetricFamily(
            "tandem_conversations_waiting",
            "Conversations waiting: for the large model (pending) or for an agent to take them (people).",
            labels=["owner"],
        )
        oldest = GaugeMetricFamily(
            "tandem_conversations_waiting_oldest_seconds",
            "How long the longest-waiting conversation has waited since it was escalated.",
            labels=["owner"],
        )
        for owner in WAITING_OWNERS:
            count, since = rows.get(owner, (0, None))
            waiting.add_metric([owner.value], count)
            oldest.add_metric([owner.value], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield waiting
        yield oldest

    def _large_jobs(self, every: dict[str, Any]) -> Iterator[Metric]:
        # The jobs still owed an answer, and those that failed, are few: counted through the index on
        # state. The answered ones are as many as the large model's answers (hundreds of thousands):
        # those the rollups count, a stored answer each.
        states = dict(
            LargeJob.objects.filter(state__in=[state for state in JobState.values if state != JobState.ANSWERED])
            .order_by()
            .values_list("state")
            .annotate(n=Count("pk"))
        )
        states[JobState.ANSWERED] = every.get("large_answers", [0])[0]
        jobs = GaugeMetricFamily(
            "tandem_large_model_jobs",
            "Large-model jobs by state: queued, started and streaming are the large model's queue.",
            labels=["state"],
        )
        for state in JobState.values:
            jobs.add_metric([state], states.get(state, 0))
        yield jobs
        yield _histogram(
            "tandem_large_model_first_token_seconds",
            "From a customer's message to the large model's first token (of its answers).",
            every,
            "large_first_token",
            LATENCY_BUCKETS,
        )
        yield _histogram(
            "tandem_large_model_answer_seconds",
            "From a customer's message to the large model's whole answer.",
            every,
            "large",
            LATENCY_BUCKETS,
        )

    def _answer_times(self, every: dict[str, Any]) -> Iterator[Metric]:
        """Histograms of the small model's answers and agents' replies (Message.latency_ms)."""
        yield _histogram(
            "tandem_small_model_answer_seconds",
            "From a customer's message to the small model's answer (server side).",
            every,
            "small",
            SMALL_BUCKETS,
        )
        yield _histogram(
            "tandem_agent_reply_seconds",
            "From a customer's message to an agent's reply.",
            every,
            "agent",
            AGENT_BUCKETS,
        )

    def _models(self) -> Iterator[Metric]:
        try:
            meta = small_model.current_meta() or {}
        except (OSError, ValueError):
            meta = {}
        yield InfoMetricFamily(
            "tandem_small_model",
            "The small model serving (no version: none trained yet).",
            value={
                "version": str(meta.get("version", "")),
                "data_fingerprint": str(meta.get("data_fingerprint", "")),
                "encoder": str(meta.get("encoder", "")),
            },
        )
        yield InfoMetricFamily(
            "tandem_large_model",
            "The large model configured.",
            value={"model": settings.TANDEM_LLM_MODEL_NAME, "backend": settings.TANDEM_LLM_BACKEND.rsplit(".", 1)[-1]},
        )


def _histogram(
    name: str, documentation: str, every: dict[str, Any], kind: str, bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    """A histogram of one of the rollups' answer times (rollups.LATENCIES), in seconds: its counts at
    these bounds (each one of rollups.LATENCY_BOUNDS, in milliseconds), all of them, and their sum."""
    counts = every.get("latency", {}).get(kind) or [0] * len(rollups.LATENCY_BOUNDS)
    running = list(itertools.accumulate(counts))
    buckets = [(str(bound), running[rollups.LATENCY_BOUNDS.index(round(bound * 1000))]) for bound in bounds]
    buckets.append(("+Inf", running[-1]))
    return HistogramMetricFamily(
        name, documentation, buckets=buckets, sum_value=every.get("latency_sum_ms", {}).get(kind, 0) / 1000
    )


def _rolled_up() -> tuple[dict[str, Any], dict[str, Any]]:
    """The rollups' figures of every customer message stored, and of those of the last 24 clock hours
    (this one and the 23 before, rebuilt first where stale)."""
    this_hour = rollups.hour_of(timezone.now())
    since = this_hour - (RECENT - rollups.HOUR)
    rollups.refresh(within=(since, this_hour + rollups.HOUR))
    every: dict[str, Any] = {}
    for figures in DayRollup.objects.values_list("figures", flat=True):
        rollups.add(every, figures)
    recent: dict[str, Any] = {}
    for figures in HourRollup.objects.filter(hour__gte=since).values_list("figures", flat=True):
        rollups.add(recent, figures)
    return every, recent


registry = CollectorRegistry(auto_describe=False)
registry.register(TandemCollector())


def _token_matches(request: HttpRequest) -> bool:
    expected = settings.TANDEM_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    # A scraper acts on status codes; a login form would be scraped as if it were metrics.
    if not (_token_matches(request) or is_agent(request.user)):
        if request.user.is_authenticated:
            return HttpResponse("staff only\n", status=403, content_type="text/plain")
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="tandem-metrics"'
        return response
    # The format the scraper asks for (OpenMetrics, or the classic text format), as the library's own
    # HTTP handlers choose it.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(registry), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
