"""The console's rollups stay right when what they count changes later: an answer that comes an hour
after its question, a label given next week, an agent joining a conversation, a conversation erased."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from support.analytics import rollups
from support.analytics.models import HourRollup, IntentDayRollup, StaleHour
from support.analytics.stats import compute_stats, day_bounds, series
from support.conversations import actions
from support.conversations.models import Conversation, Message, Role, Tier
from support.review import actions as review_actions
from support.review.models import Label
from tests.analytics.conftest import answer, at, make

pytestmark = pytest.mark.django_db
DAY = (date(2024, 3, 11), date(2024, 3, 11))


def intents(day: date = DAY[0]) -> dict[str, dict[str, Any]]:
    return {row.intent: row.figures for row in rollups.intent_days(day, day)}


def conversation_at(when: Any) -> Conversation:
    conversation = Conversation.objects.create()
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when)
    rollups.mark([when])
    conversation.refresh_from_db()
    return conversation


def test_an_answer_that_comes_later_counts_with_its_question_and_its_cost_too(prices: None) -> None:
    question = make(conversation_at(at(11, 10)), at(11, 10, 59), Role.CUSTOMER, destination="large")
    assert compute_stats(*DAY)["answered"]["large"] == 0
    answer(question, at(11, 11, 30), Tier.LARGE, model_name="big-llm", input_tokens=100, cost_usd="0.002")
    stats = compute_stats(*DAY)
    assert stats["answered"]["large"] == 1 and stats["cost_usd"]["large"] == 0.002
    hourly = {row["start"]: row for row in series(*DAY, step="hour")}
    assert hourly["2024-03-11 10:00"]["cost_usd"]["large"] == 0.002, "in the question's hour"
    assert hourly["2024-03-11 11:00"]["messages"] == 0


@pytest.mark.usefixtures("prices")
def test_a_spot_check_given_a_week_later_changes_the_intent_s_measured_accuracy(settings: Any) -> None:
    settings.TANDEM_SPOT_CHECK_SHARE = 1.0
    agent = User.objects.create_user("checker")
    from support.review.roles import make_agent

    make_agent(agent)
    conversation = conversation_at(at(11, 9))
    asked = [
        make(conversation, at(11, 9, n), Role.CUSTOMER, destination="small", intent="late-delivery") for n in range(3)
    ]
    for message in asked:
        answer(message, at(11, 9, 30), Tier.SMALL)
    assert intents()["late-delivery"]["checked"] == 0
    from support.knowledge import loader

    loader.store(loader.load_file(loader.DEMO_FILE))
    review_actions.label_message(asked[0].pk, agent, "article", "late-delivery", "answer", spot_check=True)
    review_actions.label_message(asked[1].pk, agent, "new_topic", spot_check=True)
    figures = intents()["late-delivery"]
    assert (figures["messages"], figures["checked"], figures["right"]) == (3, 2, 1)
    # A label changed later too.
    review_actions.label_message(asked[1].pk, agent, "article", "late-delivery", "answer", spot_check=True)
    assert intents()["late-delivery"]["right"] == 2
    Label.objects.filter(message=asked[0]).delete()
    assert intents()["late-delivery"]["checked"] == 1


def test_a_conversation_an_agent_joins_later_is_no_longer_resolved_by_the_bot(prices: None) -> None:
    agent = User.objects.create_user("late-agent")
    from support.review.roles import make_agent

    make_agent(agent)
    conversation = conversation_at(at(11, 8))
    make(conversation, at(11, 8, 1), Role.CUSTOMER, destination="small")
    assert compute_stats(*DAY)["conversations"] == {"started": 1, "with_people": 0, "bot_only": 1}
    actions.post_agent_reply(conversation.pk, agent, "Anything else I can help with?")
    assert compute_stats(*DAY)["conversations"] == {"started": 1, "with_people": 1, "bot_only": 0}


def test_an_erased_conversation_leaves_the_figures(prices: None) -> None:
    conversation = conversation_at(at(11, 7))
    question = make(conversation, at(11, 7, 1), Role.CUSTOMER, destination="small", intent="late-delivery")
    answer(question, at(11, 7, 2), Tier.SMALL, cost_usd="0.00001")
    assert compute_stats(*DAY)["messages"] == 1 and "late-delivery" in intents()
    actions.erase_conversations([conversation.pk])
    stats = compute_stats(*DAY)
    assert stats["messages"] == 0 and stats["conversations"]["started"] == 0
    assert intents() == {}
    assert not HourRollup.objects.exists() and not IntentDayRollup.objects.exists()


def test_an_hour_marked_again_while_it_is_rebuilt_stays_stale(prices: None) -> None:
    make(conversation_at(at(11, 6)), at(11, 6, 1), Role.CUSTOMER)
    (hour, marked_at), *_ = StaleHour.objects.filter(hour=at(11, 6)).values_list("hour", "marked_at")
    rollups.rebuild_hour(hour)
    rollups.mark([at(11, 6, 30)])  # a write lands during the rebuild
    StaleHour.objects.filter(hour=hour, marked_at=marked_at).delete()  # what refresh() does
    assert StaleHour.objects.filter(hour=hour).exists()


def test_rollups_always_equal_a_rebuild_from_the_messages_after_random_writes(prices: None, settings: Any) -> None:
    """Hundreds of writes in random order (questions, answers minutes or hours later, agents' replies,
    labels, changes of state, erasures) with reads in between: the figures read equal those rebuilt from scratch, per
    day, per hour and per intent, in a time zone with a whole-hour offset."""
    settings.TIME_ZONE = "America/New_York"
    rng = random.Random(11)
    agent = User.objects.create_user("shift")
    from support.review.roles import make_agent

    make_agent(agent)
    conversations = [conversation_at(at(10, rng.randrange(24), rng.randrange(60))) for _ in range(12)]
    questions: list[Message] = []
    large: set[int] = set()
    for step in range(160):
        kind = rng.random()
        if kind < 0.45 or not questions:
            conversation = rng.choice(conversations)
            when = conversation.created_at + timedelta(minutes=rng.randrange(0, 3000))
            questions.append(
                make(
                    conversation,
                    when,
                    Role.CUSTOMER,
                    destination=rng.choice(["small", "large", "people", ""]),
                    intent=rng.choice(["late-delivery", "how-to-return", ""]),
                    escalation_reason=rng.choice(["", "", "low_confidence", "sensitive"]),
                )
            )
        elif kind < 0.8:
            question = rng.choice(questions)
            tier = rng.choice([Tier.SMALL, Tier.LARGE, Tier.AGENT])
            if tier == Tier.LARGE:
                if question.pk in large:
                    continue  # one large answer per question at most (a constraint)
                large.add(question.pk)
            answer(
                question,
                question.created_at + timedelta(minutes=rng.randrange(0, 240)),
                tier,
                cost_usd=f"0.000{rng.randrange(1, 9)}",
                input_tokens=rng.randrange(10, 900),
                output_tokens=rng.randrange(0, 200),
                delivered=rng.random() < 0.9,
            )
        elif kind < 0.9:
            question = rng.choice(questions)
            Label.objects.update_or_create(
                message=question,
                defaults={
                    "kind": "article",
                    "article": rng.choice(["late-delivery", "how-to-return"]),
                    "spot_check": True,
                    "given_at": timezone.now(),
                },
            )
        elif kind < 0.95:
            # An agent takes it, closes it, the bot gets it back: the state alone changes (as actions do).
            conversation = rng.choice(conversations)
            conversation.owner = rng.choice(["bot", "human", "closed", "people"])
            conversation.save(update_fields=["owner", "updated_at"])
        elif len(conversations) > 4:
            gone = conversations.pop(rng.randrange(len(conversations)))
            actions.erase_conversations([gone.pk])
            questions = [q for q in questions if q.conversation_id != gone.pk]
        if step % 40 == 0:
            compute_stats(date(2024, 3, 9), date(2024, 3, 14))  # reads in between refresh some hours

    span = (date(2024, 3, 9), date(2024, 3, 14))
    read = (compute_stats(*span), series(*span, "day"), series(*span, "hour"), _intents(span), _conversations(span))
    lines = "".join(rollups.conversation_lines(*day_bounds(*span)))
    people = "".join(rollups.conversation_lines(*day_bounds(*span), keep=lambda key: key.startswith("y")))
    routes = {route: "".join(_lines_with(route, span)) for route in ("|late-delivery>", ">large|", "|>people|")}
    rollups.rebuild_all()
    rebuilt = (compute_stats(*span), series(*span, "day"), series(*span, "hour"), _intents(span), _conversations(span))
    assert read == rebuilt
    # The export's lines, an hour at a time, are the conversations' own, newest first.
    newest_first = rollups.conversations(*day_bounds(*span)).order_by("-created_at", "-conversation_id")
    assert lines == "".join(f"{row.line}\r\n" for row in newest_first)
    # And the filters' keys, kept with them, say what the conversations' rollups say.
    assert people == "".join(f"{row.line}\r\n" for row in newest_first if row.people_messages)
    for route, kept in routes.items():
        assert kept == "".join(f"{row.line}\r\n" for row in newest_first if route in row.routes), route
    assert routes["|late-delivery>"] and people
    assert read[0]["messages"] == len(questions) > 20
    # And each conversation's figures are what its messages say, counted here without the rollups.
    assert {pk: (*figures[:3], figures[4]) for pk, figures in read[4].items()} == {
        conversation.pk: (
            conversation.messages.filter(role=Role.CUSTOMER).count(),
            conversation.messages.filter(rollups.PEOPLE).count(),
            sum((m.cost_usd or 0 for m in conversation.messages.all()), Decimal(0)),
            Conversation.objects.get(pk=conversation.pk).owner,
        )
        for conversation in conversations
    }


def _lines_with(route: str, span: tuple[date, date]) -> Iterator[str]:
    return rollups.conversation_lines(*day_bounds(*span), keep=lambda key: route in key)


def _conversations(span: tuple[date, date]) -> dict[Any, tuple[Any, ...]]:
    """Each conversation's (customer messages, people's messages, cost, every field of its rollup)."""
    return {
        row.conversation_id: (
            row.customer_messages,
            row.people_messages,
            row.cost_usd,
            *(getattr(row, field) for field in rollups.CONVERSATION_FIELDS),
        )
        for row in rollups.conversations(*day_bounds(*span))
    }


def _intents(span: tuple[date, date]) -> dict[tuple[str, str], Any]:
    return {(row.day.isoformat(), row.intent): row.figures for row in rollups.intent_days(*span)}


def test_agents_time_is_priced_from_their_actions_on_the_desk(prices: None, settings: Any) -> None:
    """Replies and a note minutes apart are one stretch of work; a note added a day later is another,
    and it changes the figures of the day the conversation started."""
    settings.TANDEM_AGENT_HOUR_USD = 36.0
    from support.review.models import Note

    conversation = conversation_at(at(11, 9))
    question = make(conversation, at(11, 9, 1), Role.CUSTOMER, destination="people")
    answer(question, at(11, 9, 5), Tier.AGENT)  # starts a stretch: 60 s to read up
    answer(question, at(11, 9, 8), Tier.AGENT)  # 3 minutes later: +180 s
    stats = compute_stats(*DAY)
    assert stats["people"] == {"agent_seconds": 240, "usd": 2.4}
    assert stats["cost_with_people_usd"] == 2.4 and stats["cost_per_conversation_usd"] == 2.4
    note = Note.objects.create(conversation=conversation, text="Customer called back.")
    Note.objects.filter(pk=note.pk).update(created_at=at(12, 9))
    rollups.mark([conversation.created_at])  # the update above bypasses the signal; the create did not
    assert compute_stats(*DAY)["people"]["agent_seconds"] == 300
    # All people: every message at the agents' seconds per message they answered (one message, 300 s).
    assert compute_stats(*DAY)["all_people_usd"] == 3.0


def test_answer_times_and_ratings_add_up_per_tier_destination_and_intent(prices: None) -> None:
    from support.conversations.models import Rating

    conversation = conversation_at(at(11, 9))
    small_times = [2, 3, 3, 4, 5, 6, 8, 9, 15, 40]
    for number, milliseconds in enumerate(small_times):
        question = make(conversation, at(11, 9, number), Role.CUSTOMER, destination="small", intent="late-delivery")
        reply = answer(question, at(11, 9, number, 1), Tier.SMALL, latency_ms=milliseconds)
        if number < 3:
            Rating.objects.create(
                conversation=conversation, message=question, answer=reply, score=1 if number else -1, tier="small",
                destination="small",
            )  # fmt: skip
    question = make(conversation, at(11, 9, 30), Role.CUSTOMER, destination="large", intent="refund")
    answer(question, at(11, 9, 31), Tier.LARGE, latency_ms=4_000, first_token_ms=700)
    Rating.objects.create(conversation=conversation, score=1)  # the whole conversation
    stats = compute_stats(*DAY)
    small = stats["latency_ms"]["small"]
    assert small["answers"] == 10 and 3 <= small["p50"] <= 8 and 15 <= small["p95"] <= 50
    assert stats["latency_ms"]["large_first_token"]["answers"] == 1 and stats["latency_ms"]["large"]["p50"] >= 500
    assert stats["ratings"]["small"] == {"up": 2, "down": 1, "share_up": 2 / 3}
    assert stats["ratings_by_destination"]["small"]["up"] == 2
    assert stats["conversation_ratings"] == {"up": 1, "down": 0, "share_up": 1.0}
    from support.analytics.stats import by_intent

    late = next(row for row in by_intent(*DAY) if row["intent"] == "late-delivery")
    assert (late["rated_up"], late["rated_down"]) == (2, 1)
    # A rating changed later changes the figures.
    Rating.objects.filter(score=-1).update(score=1)
    rollups.mark([at(11, 9)])
    assert compute_stats(*DAY)["ratings"]["small"]["up"] == 3


def test_a_percentile_is_read_within_its_bucket() -> None:
    counts = [0] * len(rollups.LATENCY_BOUNDS)
    counts[rollups.bucket(100)] = 50  # 80 < t <= 120
    counts[rollups.bucket(1_000)] = 50  # 800 < t <= 1,200
    assert 80 <= rollups.percentile(counts, 0.5) <= 120  # type: ignore[operator]
    assert 800 <= rollups.percentile(counts, 0.95) <= 1_200  # type: ignore[operator]
    assert rollups.percentile([0] * len(counts), 0.5) is None


def test_percentiles_of_random_answer_times_fall_in_the_bucket_of_the_true_ones() -> None:
    rng = random.Random(5)
    for _ in range(200):
        times = sorted(
            int(rng.lognormvariate(rng.uniform(0, 9), rng.uniform(0.1, 2))) for _ in range(rng.randrange(1, 300))
        )
        counts = [0] * len(rollups.LATENCY_BOUNDS)
        for time in times:
            counts[rollups.bucket(time)] += 1
        for share, estimate in zip((0.5, 0.95), rollups.percentiles(counts, (0.5, 0.95)), strict=True):
            true = times[max(0, math.ceil(share * len(times)) - 1)]  # nearest rank
            index = rollups.bucket(true)
            low = rollups.LATENCY_BOUNDS[index - 1] if index else 0
            assert estimate is not None and low <= estimate <= rollups.LATENCY_BOUNDS[index], (share, times)
