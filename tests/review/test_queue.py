"""The queue: filters, search, counts, the order of waiting customers, and paging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from support.conversations.models import Conversation, Message, Owner, Role
from support.review.queue import PAGE_SIZE

pytestmark = pytest.mark.django_db


def conversation(
    text: str,
    *,
    minutes_waiting: float | None = None,
    owner: Owner = Owner.PEOPLE,
    destination: str = "people",
    reason: str = "human_requested",
    intent: str = "",
    agent: User | None = None,
) -> Conversation:
    made = Conversation.objects.create(
        owner=owner, agent=agent, escalation_destination=destination, escalation_reason=reason
    )
    if minutes_waiting is not None:
        Conversation.objects.filter(pk=made.pk).update(escalated_at=timezone.now() - timedelta(minutes=minutes_waiting))
    Message.objects.create(conversation=made, role=Role.CUSTOMER, text=text, intent=intent, confidence=0.4)
    return made


def page(client: Client, query: str = "") -> str:
    response = client.get(f"/review/?{query}")
    assert response.status_code == 200
    return response.content.decode()


def shown(html: str) -> list[str]:
    return re.findall(r'<tr data-conversation="([0-9a-f-]+)"', html)


@pytest.fixture
def desk(agent: User, other_agent: User) -> dict[str, Conversation]:
    return {
        "old": conversation("my card was stolen", minutes_waiting=50, reason="sensitive"),
        "new": conversation("talk to a person", minutes_waiting=2),
        "mine": conversation("refund for order 1234", minutes_waiting=10, owner=Owner.HUMAN, agent=agent),
        "theirs": conversation("refund please", minutes_waiting=5, owner=Owner.HUMAN, agent=other_agent),
        "large": conversation(
            "return a scratched sofa",
            minutes_waiting=1,
            owner=Owner.PENDING,
            destination="large",
            reason="low_confidence",
            intent="returns",
        ),
        "answered": conversation("reset my password", owner=Owner.BOT, destination="large", reason="out_of_scope"),
        "closed": conversation("thanks, bye", owner=Owner.CLOSED),
    }


@pytest.fixture
def client(agent: User) -> Client:
    client = Client()
    client.force_login(agent)
    return client


def test_waiting_customers_come_longest_waiting_first_and_the_oldest_is_marked(
    desk: dict[str, Conversation], client: Client
) -> None:
    html = page(client)
    ids = {str(c.id): name for name, c in desk.items()}
    assert [ids[i] for i in shown(html)] == ["old", "mine", "theirs", "new", "large"]
    assert re.search(rf'<tr data-conversation="{desk["old"].id}" class="oldest">', html)
    assert 'id="oldest-waiting"' in html and "50" in html.split('id="oldest-waiting"')[1].split("</p>")[0]


def test_each_state_and_owner_tab_shows_how_many_it_holds(desk: dict[str, Conversation], client: Client) -> None:
    html = page(client)
    counts = dict(re.findall(r'data-state="(\w+)"[^>]*>\w+<span class="count">(\d+)<', html))
    assert counts == {"waiting": "5", "answered": "1", "closed": "1", "all": "7"}
    owners = dict(re.findall(r'data-owner-filter="(\w+)"[^>]*>\w+<span class="count">(\d+)<', html))
    assert owners == {"anyone": "5", "mine": "1", "unassigned": "3"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=answered", {"answered"}),
        ("state=closed", {"closed"}),
        ("state=all", {"old", "new", "mine", "theirs", "large", "answered", "closed"}),
        ("owner=mine", {"mine"}),
        ("owner=unassigned", {"old", "new", "large"}),
        ("destination=large", {"large"}),
        ("reason=sensitive", {"old"}),
        ("intent=returns", {"large"}),
        ("q=refund", {"mine", "theirs"}),
        ("q=REFUND+1234", {"mine"}),
        ("q=refund+sofa", set()),
        ("state=all&q=password", {"answered"}),
    ],
)
def test_filters_and_search_narrow_the_queue(
    desk: dict[str, Conversation], client: Client, query: str, expected: set[str]
) -> None:
    ids = {str(c.id): name for name, c in desk.items()}
    assert {ids[i] for i in shown(page(client, query))} == expected


def test_a_filter_it_does_not_know_is_said_and_ignored(desk: dict[str, Conversation], client: Client) -> None:
    html = page(client, "state=everything&destination=mars&page=x")
    assert "Not understood, so not applied: state, destination, page." in html
    assert len(shown(html)) == 5


def test_the_queue_pages_and_keeps_its_filters_on_every_page(agent: User, client: Client) -> None:
    for number in range(PAGE_SIZE + 3):
        conversation(f"question {number}", minutes_waiting=1000 - number)
    first = page(client, "destination=people")
    assert len(shown(first)) == PAGE_SIZE
    next_link = re.search(r'href="\?([^"]+)" id="next-page"', first)
    assert next_link is not None
    query = next_link.group(1).replace("&amp;", "&")
    assert "destination=people" in query and "page=2" in query
    second = page(client, query)
    assert len(shown(second)) == 3 and not set(shown(second)) & set(shown(first))
    assert "Page 2 of 2" in second
    # Past the last page: the last page, not an error.
    assert shown(page(client, "destination=people&page=99")) == shown(second)
