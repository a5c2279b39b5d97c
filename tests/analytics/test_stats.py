from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from support.analytics import rollups
from support.analytics.stats import compute_stats, parse_range, series
from support.conversations.models import Conversation, Role, Tier
from tests.analytics.conftest import answer, at, make

RANGE = (date(2024, 3, 10), date(2024, 3, 12))
pytestmark = pytest.mark.django_db


def test_every_key_over_a_known_range(traffic: None) -> None:
    stats = compute_stats(*RANGE)
    # No answer times or ratings in this traffic (tests/analytics/test_rollups.py has them).
    assert stats.pop("latency_ms")["small"] == {"answers": 0, "p50": None, "p95": None}
    assert stats.pop("ratings")["small"] == {"up": 0, "down": 0, "share_up": None}
    assert stats.pop("ratings_by_destination")["people"] == {"up": 0, "down": 0, "share_up": None}
    assert stats.pop("conversation_ratings") == {"up": 0, "down": 0, "share_up": None}
    assert stats == {
        "from": "2024-03-10",
        "to": "2024-03-12",
        "messages": 6,
        # The large draft kept back for the agent was not delivered: it is not an answer here.
        "answered": {"small": 2, "large": 1, "agent": 2},
        "share_answered": {"small": 0.4, "large": 0.2, "agent": 0.4},
        "escalation_rate": 4 / 6,
        "escalations_by_reason": {"low_confidence": 2, "out_of_scope": 1, "sensitive": 1},
        # ...but it was paid for: 0.0014 + 0.0007.
        "cost_usd": {"small": 0.00003, "large": 0.0021, "total": 0.00213},
        # Real cost of m3 and m4 (0.0021) + 4 other messages at the in-range mean of 750 in / 150 out
        # tokens priced as big-llm: 4 × (750 × 1 + 150 × 2) / 1e6 = 0.0042.
        "baseline_all_large_usd": 0.0063,
        "savings_usd": 0.00417,
        "large_model": "big-llm",
        # Where the router sent them, and the one conversation (people answered in it).
        "destinations": {"small": 2, "large": 3, "people": 1},
        "share_destinations": {"small": 2 / 6, "large": 3 / 6, "people": 1 / 6},
        "conversations": {"started": 1, "with_people": 1, "bot_only": 0},
        # Agents replied on 12 March at 09:02 and 10:05 and on 13 March (the conversation started in the
        # range): three stretches of work over an hour apart, 60 s each to read up, at $30 an hour.
        "people": {"agent_seconds": 180, "usd": 1.5},
        "cost_with_people_usd": 1.50213,
        "cost_per_conversation_usd": 1.50213,
        # Every message answered by a person at the range's 90 s per agent-answered message.
        "all_people_usd": 4.5,
    }
    # Sorted by count, then by name.
    assert list(stats["escalations_by_reason"]) == ["low_confidence", "out_of_scope", "sensitive"]


def test_baseline_falls_back_to_all_time_means(traffic: None) -> None:
    c = Conversation.objects.create()
    for hour in (9, 10):
        m = make(c, at(14, hour), Role.CUSTOMER)
        answer(m, at(14, hour, 1), Tier.SMALL, cost_usd="0.00001")
    stats = compute_stats(date(2024, 3, 14), date(2024, 3, 14))
    # No large answer on the 14th: the means come from all four ever stored (6500 in, 1900 out),
    # still priced as the latest large model: 2 × (6500 × 1 + 1900 × 2) / 4 / 1e6.
    assert stats["baseline_all_large_usd"] == 0.00515
    assert stats["cost_usd"] == {"small": 0.00002, "large": 0.0, "total": 0.00002}
    assert stats["savings_usd"] == 0.00513
    assert stats["large_model"] == "big-llm"


def _small_only_traffic() -> None:
    c = Conversation.objects.create()
    m = make(c, at(10), Role.CUSTOMER)
    answer(m, at(10, 12, 1), Tier.SMALL, cost_usd="0.00001")
    make(c, at(11), Role.CUSTOMER, escalation_reason="low_confidence")
    make(c, at(12), Role.CUSTOMER, escalation_reason="model_unavailable")


def test_baseline_falls_back_to_settings_when_no_large_answer_exists(prices: None, settings: Any) -> None:
    settings.TANDEM_BASELINE_INPUT_TOKENS = 1000
    settings.TANDEM_BASELINE_OUTPUT_TOKENS = 500
    settings.TANDEM_LLM_MODEL_NAME = "big-llm"
    _small_only_traffic()
    stats = compute_stats(*RANGE)
    assert stats["baseline_all_large_usd"] == 0.006  # 3 × (1000 × 1 + 500 × 2) / 1e6
    assert stats["savings_usd"] == 0.00599
    assert stats["large_model"] == "big-llm"


def test_baseline_defaults_when_settings_are_absent(prices: None, settings: Any) -> None:
    for name in ("TANDEM_BASELINE_INPUT_TOKENS", "TANDEM_BASELINE_OUTPUT_TOKENS", "TANDEM_LLM_MODEL_NAME"):
        if hasattr(settings, name):
            delattr(settings, name)
    settings.TANDEM_PRICES = {"SmolLM2-135M-Instruct": {"input": 0.05, "output": 0.2}}
    _small_only_traffic()
    stats = compute_stats(*RANGE)
    assert stats["large_model"] == "SmolLM2-135M-Instruct"
    assert stats["baseline_all_large_usd"] == 0.000162  # 3 × (600 × 0.05 + 120 × 0.2) / 1e6


def test_empty_range_is_all_zeros(traffic: None) -> None:
    stats = compute_stats(date(2024, 1, 1), date(2024, 1, 31))
    assert stats["messages"] == 0
    assert stats["answered"] == {"small": 0, "large": 0, "agent": 0}
    assert stats["share_answered"] == {"small": 0.0, "large": 0.0, "agent": 0.0}
    assert stats["escalation_rate"] == 0.0
    assert stats["escalations_by_reason"] == {}
    assert stats["cost_usd"] == {"small": 0.0, "large": 0.0, "total": 0.0}
    assert stats["baseline_all_large_usd"] == 0.0
    assert stats["savings_usd"] == 0.0


def test_days_are_calendar_days_in_the_configured_time_zone(prices: None, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in early March
    c = Conversation.objects.create()
    make(c, at(9, 22, 59, 59), Role.CUSTOMER)  # 9 March 23:59:59 in Paris: out
    make(c, at(9, 23, 0, 0), Role.CUSTOMER)  # 10 March 00:00 in Paris: in
    make(c, at(12, 22, 59, 59), Role.CUSTOMER)  # 12 March 23:59:59 in Paris: in
    make(c, at(12, 23, 0, 0), Role.CUSTOMER)  # 13 March 00:00 in Paris: out
    assert compute_stats(*RANGE)["messages"] == 2


def test_the_hour_the_clock_goes_back_counts_both_of_its_hours(prices: None, settings: Any) -> None:
    """27 October 2024 in Paris has 25 hours: 02:00-03:00 comes twice (00:00 and 01:00 UTC). The hourly
    series shows that local hour once, with the messages of both; the day and the range count all."""
    settings.TIME_ZONE = "Europe/Paris"
    c = Conversation.objects.create()
    for moment in (at(27, 0, 30, month=10), at(27, 1, 30, month=10), at(27, 1, 45, month=10), at(27, 5, month=10)):
        make(c, moment, Role.CUSTOMER, destination="small")
    day = (date(2024, 10, 27), date(2024, 10, 27))
    hourly = {bucket["start"]: bucket["messages"] for bucket in series(*day, "hour")}
    assert len(hourly) == 24 and hourly["2024-10-27 02:00"] == 3 and hourly["2024-10-27 06:00"] == 1
    assert [bucket["messages"] for bucket in series(*day, "day")] == [4]
    assert compute_stats(*day)["messages"] == 4
    # Reading again gives the same (the sum did not change what was read).
    assert {bucket["start"]: bucket["messages"] for bucket in series(*day, "hour")} == hourly


def test_an_hourly_series_read_again_shows_what_changed_since_and_only_that(prices: None, settings: Any) -> None:
    """The series keeps what it made of each hour while the hour and the prices stay the same (an hour's
    summary is made once); a new message, an agent's reply or a new price per agent hour shows at once."""
    day = (date(2024, 3, 11), date(2024, 3, 11))
    c = Conversation.objects.create()
    question = make(c, at(11, 9, 5), Role.CUSTOMER, destination="small")
    answer(question, at(11, 9, 6), Tier.SMALL, cost_usd="0.00002")
    first = {bucket["start"]: bucket for bucket in series(*day, "hour")}
    assert first["2024-03-11 09:00"]["messages"] == 1 and first["2024-03-11 10:00"]["messages"] == 0
    assert {bucket["start"]: bucket for bucket in series(*day, "hour")} == first
    make(c, at(11, 10, 1), Role.CUSTOMER, destination="people")
    second = {bucket["start"]: bucket for bucket in series(*day, "hour")}
    assert second["2024-03-11 10:00"]["messages"] == 1 and second["2024-03-11 10:00"]["destinations"]["people"] == 1
    assert second["2024-03-11 09:00"] == first["2024-03-11 09:00"]
    answer(question, at(11, 9, 20), Tier.AGENT)
    third = {bucket["start"]: bucket for bucket in series(*day, "hour")}
    assert third["2024-03-11 09:00"]["answered"]["agent"] == 1
    settings.TANDEM_AGENT_HOUR_USD = 3600
    fourth = {bucket["start"]: bucket for bucket in series(*day, "hour")}
    assert fourth["2024-03-11 09:00"]["all_people_usd"] != third["2024-03-11 09:00"]["all_people_usd"]
    assert [bucket["messages"] for bucket in fourth.values()] == [bucket["messages"] for bucket in third.values()]


def test_aggregates_in_a_fixed_number_of_queries(traffic: None, django_assert_max_num_queries: Any) -> None:
    rollups.refresh_all()
    with django_assert_max_num_queries(4):
        compute_stats(*RANGE)


def test_parse_range() -> None:
    assert parse_range("2024-03-10", "2024-03-12") == RANGE
    assert parse_range(" 2024-03-10 ", "2024-03-10") == (date(2024, 3, 10), date(2024, 3, 10))
    today = timezone.localdate()
    assert parse_range(None, None) == (today - timedelta(days=29), today)
    assert parse_range("", "") == (today - timedelta(days=29), today)
    assert parse_range(None, "2024-03-31") == (date(2024, 3, 2), date(2024, 3, 31))


@pytest.mark.parametrize(
    ("from_str", "to_str", "message"),
    [
        ("2024-3-10", "2024-03-12", "'from' must be a date in YYYY-MM-DD format, got '2024-3-10'"),
        ("20240310", "2024-03-12", "'from' must be a date in YYYY-MM-DD format"),
        ("2024-03-10", "2024-02-30", "'to' must be a date in YYYY-MM-DD format, got '2024-02-30'"),
        ("2024-03-10", "yesterday", "'to' must be a date in YYYY-MM-DD format"),
        ("2024-03-12", "2024-03-10", "'from' (2024-03-12) is after 'to' (2024-03-10)"),
    ],
)
def test_parse_range_rejects(from_str: str, to_str: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_range(from_str, to_str)
    assert message in str(error.value)


def test_a_multi_part_message_answered_in_two_parts_counts_as_one_small_answer(prices: None) -> None:
    conversation = Conversation.objects.create()
    question = make(conversation, at(11), Role.CUSTOMER, client_id="p1")
    answer(question, at(11, second=1), Tier.SMALL, input_tokens=20)
    answer(question, at(11, second=1), Tier.SMALL)
    stats = compute_stats(*RANGE)
    assert stats["messages"] == 1 and stats["answered"]["small"] == 1
