"""Metrics for Prometheus: staff or a scraper with the token read them, nobody else; the figures are
the database's, in the Prometheus text format."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from chatbot.small import model as small_model
from support.analytics import rollups
from support.analytics.tasks import refresh_rollups
from support.conversations.models import Conversation, JobState, LargeJob, Message, Owner, Role, Tier

pytestmark = pytest.mark.django_db

TOKEN = "a-long-random-scraper-token-0123456789"


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get(reverse("metrics"), headers=headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def customer(conversation: Conversation, destination: str, reason: str = "", days_ago: int = 0) -> Message:
    message = Message.objects.create(
        conversation=conversation, role=Role.CUSTOMER, text="hi", destination=destination, escalation_reason=reason
    )
    if days_ago:
        Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
        message.refresh_from_db()
        # As a save would (the rollups' signal): the hour it left and the hour it is in changed.
        rollups.mark([timezone.now(), message.created_at])
    return message


@pytest.fixture
def traffic(db: None) -> None:
    """Seven customer messages (one two days old), two conversations waiting, three large-model jobs."""
    bot = Conversation.objects.create()
    customer(bot, "small")
    customer(bot, "small", days_ago=2)
    customer(bot, "small")
    slow = customer(bot, "large", "low_confidence")
    fast = customer(bot, "large", "out_of_scope")
    queued = customer(bot, "large", "out_of_scope")
    customer(bot, "people", "human_requested")
    Conversation.objects.create(owner=Owner.PEOPLE, escalated_at=timezone.now() - timedelta(minutes=10))
    Conversation.objects.create(owner=Owner.PENDING, escalated_at=timezone.now())
    for message, first_token, finished in ((fast, 0.8, 3.0), (slow, 12.0, 40.0)):
        LargeJob.objects.create(
            message=message,
            conversation=bot,
            queued_at=message.created_at,
            state=JobState.ANSWERED,
            first_token_at=message.created_at + timedelta(seconds=first_token),
            finished_at=message.created_at + timedelta(seconds=finished),
        )
        # Its answer, with the times the worker stored (actions.store_large_answer).
        Message.objects.create(
            conversation=bot,
            role=Role.BOT,
            tier=Tier.LARGE,
            text="answer",
            reply_to=message,
            first_token_ms=round(first_token * 1000),
            latency_ms=round(finished * 1000),
        )
    LargeJob.objects.create(message=queued, conversation=bot, queued_at=timezone.now())
    # Answer times: the small model's in milliseconds, an agent's in minutes; one answer with none stored.
    first, second, third = Message.objects.filter(destination="small").order_by("pk")
    for question, tier, role, latency in (
        (first, Tier.SMALL, Role.BOT, 2),
        (second, Tier.SMALL, Role.BOT, 40),
        (third, Tier.SMALL, Role.BOT, None),
        (third, Tier.AGENT, Role.AGENT, 150_000),
    ):
        Message.objects.create(
            conversation=bot, role=role, tier=tier, text="answer", reply_to=question, latency_ms=latency
        )


@pytest.fixture
def staff(agent: User) -> Client:
    client = Client()
    client.force_login(agent)
    return client


def test_an_agent_signed_in_reads_the_metrics(staff: Client, traffic: None) -> None:
    assert scrape(staff)


@override_settings(TANDEM_METRICS_TOKEN=TOKEN)
def test_a_scraper_reads_the_metrics_with_the_token(traffic: None) -> None:
    assert scrape(Client(), Authorization=f"Bearer {TOKEN}")


@override_settings(TANDEM_METRICS_TOKEN=TOKEN)
@pytest.mark.parametrize("header", ["", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer "])
def test_anyone_without_the_token_is_refused_with_401(header: str) -> None:
    response = Client().get(reverse("metrics"), headers={"Authorization": header} if header else {})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_with_no_token_set_no_token_opens_the_metrics() -> None:
    assert Client().get(reverse("metrics"), headers={"Authorization": "Bearer "}).status_code == 401


def test_a_signed_in_visitor_is_refused_with_403(visitor: User) -> None:
    client = Client()
    client.force_login(visitor)

    assert client.get(reverse("metrics")).status_code == 403


def test_the_numbers_match_the_messages_stored(staff: Client, traffic: None) -> None:
    """The last 24 hours' figures at once; a change to an older hour once the rollups' beat task
    (refresh_rollups, every minute) has rebuilt it."""
    before = scrape(staff)
    assert before[("tandem_customer_messages_24h", (("destination", "small"),))] == 2
    assert before[("tandem_customer_messages", (("destination", "small"),))] == 2  # the older hour: not yet
    refresh_rollups()
    figures = scrape(staff)

    def value(name: str, **labels: str) -> float:
        return figures[(name, tuple(sorted(labels.items())))]

    assert value("tandem_customer_messages", destination="small") == 3
    assert value("tandem_customer_messages_24h", destination="small") == 2
    assert value("tandem_customer_messages", destination="large") == 3
    assert value("tandem_customer_messages", destination="people") == 1
    assert value("tandem_escalations", reason="out_of_scope") == 2
    assert value("tandem_escalations", reason="low_confidence") == 1
    assert value("tandem_escalations", reason="human_requested") == 1
    assert value("tandem_escalations_24h", reason="complaint") == 0
    assert value("tandem_conversations_waiting", owner="people") == 1
    assert value("tandem_conversations_waiting", owner="pending") == 1
    assert 590 < value("tandem_conversations_waiting_oldest_seconds", owner="people") < 700
    assert value("tandem_large_model_jobs", state="queued") == 1
    assert value("tandem_large_model_jobs", state="answered") == 2
    assert value("tandem_large_model_first_token_seconds_bucket", le="0.5") == 0
    assert value("tandem_large_model_first_token_seconds_bucket", le="0.8") == 1
    assert value("tandem_large_model_first_token_seconds_bucket", le="8.0") == 1
    assert value("tandem_large_model_first_token_seconds_bucket", le="12.0") == 2
    assert value("tandem_large_model_first_token_seconds_count") == 2
    assert value("tandem_large_model_first_token_seconds_sum") == pytest.approx(12.8)
    assert value("tandem_large_model_answer_seconds_bucket", le="5.0") == 1
    assert value("tandem_large_model_answer_seconds_bucket", le="+Inf") == 2
    assert value("tandem_large_model_answer_seconds_sum") == pytest.approx(43.0)
    assert value("tandem_small_model_answer_seconds_bucket", le="0.001") == 0
    assert value("tandem_small_model_answer_seconds_bucket", le="0.002") == 1
    assert value("tandem_small_model_answer_seconds_bucket", le="0.05") == 2
    assert value("tandem_small_model_answer_seconds_count") == 2
    assert value("tandem_small_model_answer_seconds_sum") == pytest.approx(0.042)
    assert value("tandem_agent_reply_seconds_bucket", le="120.0") == 0
    assert value("tandem_agent_reply_seconds_bucket", le="300.0") == 1
    assert value("tandem_agent_reply_seconds_count") == 1


def test_the_model_versions_are_named(staff: Client, small_model_dir: object) -> None:
    meta = small_model.current_meta()
    assert meta is not None
    figures = scrape(staff)

    small = [labels for (name, labels) in figures if name == "tandem_small_model_info"]
    large = [labels for (name, labels) in figures if name == "tandem_large_model_info"]
    assert dict(small[0])["version"] == meta["version"]
    assert dict(large[0])["model"]


def test_a_scrape_reads_the_rollups_not_every_message(staff: Client, traffic: None) -> None:
    refresh_rollups()
    with CaptureQueriesContext(connection) as queries:
        scrape(staff)

    # The session and the user's groups, then the metrics' own: stale hours (none), the day rollups,
    # the last 24 hours' rollups, conversations waiting, large-model jobs by state.
    metrics = [
        query["sql"]
        for query in queries.captured_queries
        if "auth_" not in query["sql"] and "django_session" not in query["sql"]
    ]
    assert len(metrics) == 5, [sql[:120] for sql in metrics]
    assert not [sql for sql in metrics if "conversations_message" in sql]


def test_an_unrouted_message_counts_apart_from_those_sent_to_people(staff: Client, traffic: None) -> None:
    bot = Conversation.objects.create(owner=Owner.HUMAN)
    customer(bot, "")
    figures = scrape(staff)

    assert figures[("tandem_customer_messages", (("destination", "unrouted"),))] == 1
    assert figures[("tandem_customer_messages_24h", (("destination", "unrouted"),))] == 1
    assert figures[("tandem_customer_messages", (("destination", "people"),))] == 1


def test_a_scraper_asking_for_openmetrics_gets_it(staff: Client, traffic: None) -> None:
    response = staff.get(reverse("metrics"), headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {family.name for family in openmetrics_families(response.content.decode())}
    assert {"tandem_customer_messages", "tandem_large_model_first_token_seconds"} <= families
