"""A known set of messages around the range 2024-03-10 .. 2024-03-12 (UTC).

The personas (agent, admin_user, visitor) come from tests/conftest.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from support.analytics import rollups
from support.conversations.models import Conversation, Message, Role, Tier

_ids = itertools.count(1)


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, minute, second, tzinfo=UTC)


def make(conversation: Conversation, when: datetime, role: str, **fields: Any) -> Message:
    """A message created at `when` (created_at is auto_now_add, so it is set after the insert)."""
    if role == Role.CUSTOMER:
        fields.setdefault("client_id", f"c{next(_ids)}")
    fields["cost_usd"] = Decimal(fields.get("cost_usd", 0))
    message = Message.objects.create(conversation=conversation, role=role, text=fields.pop("text", "…"), **fields)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    # A bulk update bypasses the signals that keep the console's rollups right: say so, as the seed does.
    rollups.mark_messages([message.pk])
    message.refresh_from_db()
    return message


def answer(customer: Message, when: datetime, tier: str, **fields: Any) -> Message:
    role = Role.AGENT if tier == Tier.AGENT else Role.BOT
    return make(customer.conversation, when, role, tier=tier, reply_to=customer, **fields)


@pytest.fixture
def prices(settings: Any) -> None:
    # Round prices (USD per million tokens) keep the expected figures readable; old-llm is priced
    # absurdly so that pricing the baseline with the wrong model shows.
    settings.TANDEM_PRICES = {
        "all-MiniLM-L6-v2": {"input": 0.005, "output": 0.0},
        "big-llm": {"input": 1.0, "output": 2.0},
        "old-llm": {"input": 10.0, "output": 10.0},
    }
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def traffic(db: None, prices: None) -> None:
    """In range (10–12 March): 6 customer messages; outside it: 3 more, before and after.

    m1, m2  answered by the small model ($0.00001, $0.00002)
    m3      low_confidence → large answer, delivered (1000 in / 200 out, $0.0014)
    m4      low_confidence → large draft kept back (500 / 100, $0.0007) + agent reply
    m5      sensitive → agent reply
    m6      out_of_scope, still unanswered
    """
    c = Conversation.objects.create()
    Conversation.objects.filter(pk=c.pk).update(created_at=at(10, 0, 0, 0))
    rollups.mark([at(10, 0, 0, 0)])
    m1 = make(c, at(10, 0, 0, 0), Role.CUSTOMER, destination="small")  # first instant of the range
    answer(m1, at(10, 0, 0, 1), Tier.SMALL, model_name="all-MiniLM-L6-v2", input_tokens=2, cost_usd="0.00001")
    m2 = make(c, at(11), Role.CUSTOMER, destination="small")
    answer(m2, at(11, 12, 0, 1), Tier.SMALL, model_name="all-MiniLM-L6-v2", input_tokens=4, cost_usd="0.00002")
    m3 = make(c, at(11, 13), Role.CUSTOMER, escalation_reason="low_confidence", destination="large")
    answer(m3, at(11, 13, 1), Tier.LARGE, model_name="big-llm", input_tokens=1000, output_tokens=200, cost_usd="0.0014")
    m4 = make(c, at(12, 9), Role.CUSTOMER, escalation_reason="low_confidence", destination="large")
    answer(
        m4,
        at(12, 9, 1),
        Tier.LARGE,
        model_name="big-llm",
        input_tokens=500,
        output_tokens=100,
        cost_usd="0.0007",
        delivered=False,
    )
    answer(m4, at(12, 9, 2), Tier.AGENT)
    m5 = make(c, at(12, 10), Role.CUSTOMER, escalation_reason="sensitive", destination="people")
    answer(m5, at(12, 10, 5), Tier.AGENT)
    # The last second of the range.
    make(c, at(12, 23, 59, 59), Role.CUSTOMER, escalation_reason="out_of_scope", destination="large")

    # Outside the range; the latest large answer (13 March) names the model the baseline is priced at.
    old = make(c, at(1), Role.CUSTOMER, escalation_reason="low_confidence")
    answer(old, at(1, 12, 1), Tier.LARGE, model_name="old-llm", input_tokens=2000, output_tokens=1000, cost_usd="0.05")
    before = make(c, at(9, 23, 59, 59), Role.CUSTOMER, escalation_reason="sensitive")
    answer(before, at(9, 23, 59, 59), Tier.SMALL, cost_usd="0.5")
    after = make(c, at(13, 0, 0, 0), Role.CUSTOMER, escalation_reason="low_confidence")
    answer(
        after, at(13, 0, 1), Tier.LARGE, model_name="big-llm", input_tokens=3000, output_tokens=600, cost_usd="0.0042"
    )
    answer(after, at(13, 0, 2), Tier.AGENT)
