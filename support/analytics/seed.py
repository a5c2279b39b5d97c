"""Realistic synthetic traffic for the console and its benchmark (`manage.py seed_traffic`).

Conversations start through the day (busier in office hours, quieter at weekends) over `days` ending
now; each has one to a dozen customer messages a few minutes apart. The router's mix is a small model
answering most routine intents (a Zipf spread over the knowledge base's articles, small talk, and
messages with no intent), the large model the unsure and out-of-scope ones, people the sensitive ones
and those asking for a person; each gets the answers, tokens, costs (priced by chatbot.costs as the
product prices them) and latencies its tier would have, agents reply minutes later, some conversations
are closed, customers rate some answers, and agents spot-check some small-tier answers and label some
escalations. Rows are written in bulk, with the large model's job records (no protocol events; the
rollups are rebuilt at the end).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.utils import timezone

from chatbot import costs
from support.analytics import rollups
from support.conversations.models import Conversation, JobState, LargeJob, Message, Owner, Rating, Role, Tier
from support.review.models import Label, LabelKind

BATCH = 5000
FALLBACK_INTENTS = [
    "reset-password", "late-delivery", "how-to-return", "card-declined", "change-address", "cancel-order",
    "refund-status", "damaged-on-arrival", "pay-later-instalments", "vat-invoice", "delete-account",
    "gift-cards", "track-order", "missing-item", "wrong-size", "change-email", "two-factor", "opening-hours",
    "shipping-countries", "discount-code", "price-match", "warranty", "assembly-service", "store-pickup",
]  # fmt: skip
SMALL_TALK = ["smalltalk-greeting", "smalltalk-thanks", "smalltalk-goodbye", "smalltalk-bot"]
LARGE_REASONS = [("low_confidence", 0.6), ("out_of_scope", 0.25), ("multi_part", 0.08), ("language", 0.07)]
PEOPLE_REASONS = [("human_requested", 0.45), ("sensitive", 0.3), ("complaint", 0.25)]
QUESTIONS = [
    "where is my order {n}", "how do I {verb} my {thing}", "my {thing} arrived broken", "can I {verb} the {thing}?",
    "I was charged twice for order {n}", "hello", "thanks!", "I want to talk to a person", "is {thing} in stock",
]  # fmt: skip


@contextlib.contextmanager
def _explicit_created_at() -> Iterator[None]:
    """bulk_create sets auto_now_add fields to now: let the rows keep the times given."""
    fields = [model._meta.get_field("created_at") for model in (Conversation, Message, Rating)]
    for field in fields:
        assert isinstance(field, models.DateTimeField)
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            assert isinstance(field, models.DateTimeField)
            field.auto_now_add = True


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([value for value, _ in weighted], [weight for _, weight in weighted])[0]


def _start_times(rng: random.Random, count: int, days: int, end: datetime) -> list[datetime]:
    """Conversation starts over `days` before `end`: busier 9:00–18:00 (local), quieter at weekends."""
    starts: list[datetime] = []
    span = days * 86400
    while len(starts) < count:
        moment = end - timedelta(seconds=rng.random() * span)
        local = timezone.localtime(moment)
        weight = 1.0 if 9 <= local.hour < 18 else 0.35 if 7 <= local.hour < 22 else 0.1
        if local.weekday() >= 5:
            weight *= 0.6
        if rng.random() < weight:
            starts.append(moment)
    return sorted(starts)


def seed(
    messages: int,
    days: int = 180,
    *,
    random_seed: int = 0,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write about `messages` customer messages (and their answers, ratings and labels) spread over
    `days` ending at `end` (now), then rebuild the rollups. Returns the counts written."""
    say = progress or (lambda line: None)
    rng = random.Random(random_seed)
    end = end or timezone.now()
    from support.knowledge.models import Article

    intents = list(Article.objects.values_list("slug", flat=True)) or FALLBACK_INTENTS
    zipf = [1 / (rank + 1) ** 1.1 for rank in range(len(intents))]
    agent, _ = User.objects.get_or_create(username="seed-agent", defaults={"first_name": "Seed"})
    small_model, large_model = settings.TANDEM_SMALL_MODEL_NAME, settings.TANDEM_LLM_MODEL_NAME
    written = {"conversations": 0, "customer_messages": 0, "answers": 0, "ratings": 0, "labels": 0}
    chunk = max(1, BATCH // 3)
    with _explicit_created_at():
        while written["customer_messages"] < messages:
            # About two customer messages a conversation (fewer near `end`): more starts until enough.
            needed = messages - written["customer_messages"]
            starts = _start_times(rng, max(1, round(needed / 2.2)), days, end)
            for first in range(0, len(starts), chunk):
                if written["customer_messages"] >= messages:
                    break
                with transaction.atomic():
                    _write_chunk(
                        rng, starts[first : first + chunk], messages, written, intents, zipf, agent,
                        small_model, large_model, end,
                    )  # fmt: skip
                say(f"{written['customer_messages']:,} customer messages written")
    # The planner's statistics, out of date after a bulk load (PostgreSQL would otherwise scan whole
    # tables for queries an index answers in a millisecond, until autovacuum gets round to it).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    say("Rebuilding the console's rollups")
    rollups.rebuild_all()
    return written


def _write_chunk(
    rng: random.Random,
    starts: list[datetime],
    limit: int,
    written: dict[str, int],
    intents: list[str],
    zipf: list[float],
    agent: User,
    small_model: str,
    large_model: str,
    end: datetime,
) -> None:
    conversations = [Conversation(created_at=start, owner=Owner.BOT) for start in starts]
    Conversation.objects.bulk_create(conversations, batch_size=BATCH)
    questions: list[Message] = []
    for conversation in conversations:
        count = min(12, 1 + int(rng.expovariate(1 / 1.6)))
        moment = conversation.created_at
        for number in range(count):
            if written["customer_messages"] + len(questions) >= limit:
                break
            moment += timedelta(seconds=rng.randint(20, 400) if number else 0)
            if moment >= end:
                break
            roll = rng.random()
            intent = rng.choice(SMALL_TALK) if roll < 0.12 else "" if roll < 0.18 else rng.choices(intents, zipf)[0]
            destination = rng.choices(["small", "large", "people"], [0.62, 0.28, 0.10])[0]
            if intent == "" and destination == "small":
                destination = "large"
            reason = ""
            if destination == "large":
                reason = _pick(rng, LARGE_REASONS)
            elif destination == "people":
                reason = _pick(rng, PEOPLE_REASONS)
            text = rng.choice(QUESTIONS).format(
                n=rng.randint(10000, 99999),
                verb=rng.choice(["change", "return", "cancel", "track"]),
                thing=rng.choice(["order", "password", "sofa", "card", "address", "lamp"]),
            )
            questions.append(
                Message(
                    conversation=conversation,
                    role=Role.CUSTOMER,
                    client_id=f"seed-{conversation.pk.hex[:12]}-{number}",
                    text=text,
                    intent=intent,
                    confidence=round(rng.uniform(0.85, 0.999) if destination == "small" else rng.uniform(0.2, 0.9), 4),
                    escalation_reason=reason,
                    destination=destination,
                    language="en",
                    created_at=moment,
                )
            )
    Message.objects.bulk_create(questions, batch_size=BATCH)
    written["conversations"] += len(conversations)
    written["customer_messages"] += len(questions)

    answers: list[Message] = []
    jobs: list[LargeJob] = []
    people: set[Any] = set()
    for question in questions:
        at = question.created_at
        if question.destination == "small":
            tokens = rng.randint(8, 40)
            latency = max(1, round(rng.lognormvariate(math.log(3), 0.5)))
            answers.append(
                Message(
                    conversation=question.conversation, role=Role.BOT, text="(the article's answer)",
                    reply_to=question, tier=Tier.SMALL, model_name=small_model, input_tokens=tokens,
                    cost_usd=costs.cost_usd(small_model, tokens, 0), latency_ms=latency,
                    created_at=at + timedelta(milliseconds=latency),
                )
            )  # fmt: skip
        elif question.destination == "large":
            tokens_in, tokens_out = rng.randint(350, 900), rng.randint(40, 220)
            first_token = round(rng.lognormvariate(math.log(900), 0.5))
            latency = first_token + tokens_out * rng.randint(15, 40)
            answers.append(
                Message(
                    conversation=question.conversation, role=Role.BOT, text="(the large model's answer)",
                    reply_to=question, tier=Tier.LARGE, model_name=large_model, input_tokens=tokens_in,
                    output_tokens=tokens_out, cost_usd=costs.cost_usd(large_model, tokens_in, tokens_out),
                    first_token_ms=first_token, latency_ms=latency,
                    created_at=at + timedelta(milliseconds=latency),
                )
            )  # fmt: skip
            # The queue's record of it, as a worker leaves it.
            jobs.append(
                LargeJob(
                    message=question, conversation=question.conversation, state=JobState.ANSWERED, queued_at=at,
                    attempt=1, first_token_at=at + timedelta(milliseconds=first_token),
                    finished_at=at + timedelta(milliseconds=latency),
                )
            )  # fmt: skip
        else:
            people.add(question.conversation_id)
            if rng.random() < 0.93:
                wait = round(rng.lognormvariate(math.log(240_000), 0.8))
                answers.append(
                    Message(
                        conversation=question.conversation, role=Role.AGENT, text="(an agent's reply)",
                        reply_to=question, tier=Tier.AGENT, author=agent, latency_ms=wait,
                        created_at=at + timedelta(milliseconds=wait),
                    )
                )  # fmt: skip
    Message.objects.bulk_create(answers, batch_size=BATCH)
    LargeJob.objects.bulk_create(jobs, batch_size=BATCH)
    written["answers"] += len(answers)

    closed = [c.pk for c in {q.conversation for q in questions} if c.pk in people and rng.random() < 0.7]
    Conversation.objects.filter(pk__in=closed).update(owner=Owner.CLOSED)

    ratings: list[Rating] = []
    up = {"small": 0.86, "large": 0.74, "agent": 0.9}
    for answer in answers:
        if rng.random() < 0.08:
            assert answer.reply_to is not None
            score = 1 if rng.random() < up[answer.tier] else -1
            ratings.append(
                Rating(
                    conversation=answer.conversation, message=answer.reply_to, answer=answer, score=score,
                    comment=rng.choice(["", "", "Not what I asked.", "Too slow."]) if score < 0 else "",
                    tier=answer.tier, destination=answer.reply_to.destination,
                    created_at=answer.created_at + timedelta(seconds=rng.randint(5, 120)),
                )
            )  # fmt: skip
    Rating.objects.bulk_create(ratings, batch_size=BATCH)
    written["ratings"] += len(ratings)

    labels: list[Label] = []
    for question in questions:
        spot = question.destination == "small" and not question.intent.startswith("smalltalk-")
        if spot and rng.random() < 0.05:
            right = rng.random() < 0.97
            article = question.intent if right else rng.choice(intents)
            labels.append(_label(question, article, agent, end, spot_check=True))
        elif question.destination in ("large", "people") and question.intent and rng.random() < 0.3:
            labels.append(_label(question, question.intent, agent, end, spot_check=False))
    Label.objects.bulk_create(labels, batch_size=BATCH)
    written["labels"] += len(labels)


def _label(question: Message, article: str, agent: User, end: datetime, *, spot_check: bool) -> Label:
    given = min(end, question.created_at + timedelta(hours=6))
    return Label(
        message=question, kind=LabelKind.ARTICLE, article=article, proposed="answer" if spot_check else "guess",
        given_by=agent, given_at=given, spot_check=spot_check,
    )  # fmt: skip
