"""The queue: filters, search, counts, the order of waiting customers, and paging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from support.conversations import search
from support.conversations.models import Conversation, Message, Owner, Rating, Role
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


def named(desk: dict[str, Conversation], html: str) -> set[str]:
    ids = {str(c.id): name for name, c in desk.items()}
    return {ids.get(i, i) for i in shown(html)}


@pytest.mark.parametrize("query", ["refunds", "refunded", "Refunding", "refund"])
def test_search_finds_the_other_forms_of_a_word(desk: dict[str, Conversation], client: Client, query: str) -> None:
    assert named(desk, page(client, f"q={query}")) == {"mine", "theirs"}


def test_search_words_may_be_in_different_messages_of_one_conversation(
    desk: dict[str, Conversation], client: Client
) -> None:
    Message.objects.create(conversation=desk["old"], role=Role.AGENT, text="Which card was it?")
    Message.objects.create(conversation=desk["old"], role=Role.CUSTOMER, text="The blue one, yesterday")
    assert named(desk, page(client, "q=yesterday+stolen+blue")) == {"old"}
    # Every word must be somewhere: one missing from all its messages leaves the conversation out.
    assert named(desk, page(client, "q=yesterday+stolen+green")) == set()


def test_the_last_search_word_may_be_half_typed(desk: dict[str, Conversation], client: Client) -> None:
    assert named(desk, page(client, "state=all&q=reset+passw")) == {"answered"}
    # Only the last: a word before it is a whole word.
    assert named(desk, page(client, "state=all&q=passw+reset")) == set()


def test_search_ignores_words_of_punctuation_alone(desk: dict[str, Conversation], client: Client) -> None:
    assert named(desk, page(client, "q=refund+...+%21%21+--+%22%22")) == {"mine", "theirs"}
    # Punctuation around or inside a word is only a separator.
    assert named(desk, page(client, "q=%22refund%22+%28order%29+%231234.")) == {"mine"}


def test_a_message_edited_or_deleted_is_searched_as_it_is_now(desk: dict[str, Conversation], client: Client) -> None:
    message = desk["new"].messages.get()
    message.text = "my parcel never arrived"
    message.save()
    assert named(desk, page(client, "q=parcel")) == {"new"}
    assert named(desk, page(client, "q=person")) == set()
    Message.objects.filter(pk=message.pk).update(text="the courier lost it")
    assert named(desk, page(client, "q=parcel")) == set()
    assert named(desk, page(client, "q=courier")) == {"new"}
    # Other columns change without touching what is searched.
    Message.objects.filter(pk=message.pk).update(intent="delivery")
    assert named(desk, page(client, "q=courier")) == {"new"}
    message.delete()
    assert named(desk, page(client, "q=courier")) == set()
    # Deleting a conversation takes its messages out of the search as well.
    desk["mine"].delete()
    assert named(desk, page(client, "q=refund")) == {"theirs"}


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '"refund',
        "NOT",
        "refund NOT sofa",
        "refund OR sofa",
        "refund AND",
        "NEAR(refund sofa)",
        "*",
        "refund*",
        "^refund",
        "-refund",
        "a:b",
        "text:refund",
        "(",
        "refund)",
        "{refund}",
        "'",
        "it's",
        "\\",
        "!(refund)&|<->",
        "x" * 2000,
        "refund " + "y" * 2000,
        "ünïcödé 退款 émoji 😀",
        "\x00refund",
        "%",
        "_",
    ],
)
def test_search_text_of_any_kind_shows_a_page_not_an_error(
    desk: dict[str, Conversation], client: Client, text: str
) -> None:
    response = client.get("/review/", {"q": text})
    assert response.status_code == 200
    assert "Waiting" in response.content.decode()


def test_search_text_that_looks_like_query_syntax_is_only_words(desk: dict[str, Conversation], client: Client) -> None:
    # Were OR or NEAR operators these would find "mine" and "theirs"; they are words no message holds
    # (or, on PostgreSQL, a stop word left out), so no conversation holds every word.
    assert named(desk, page(client, "q=refund+OR+sofa")) == set()
    assert named(desk, page(client, "q=refund+NEAR+sofa")) == set()
    # A star is not a wildcard (the last word is a prefix anyway).
    assert named(desk, page(client, "q=refund+pl*")) == {"theirs"}
    assert named(desk, page(client, "q=ref*+please")) == set()


def test_the_full_text_index_is_in_place_after_every_migration(db: None) -> None:
    """A migration that remakes conversations_message on SQLite drops its triggers; this says so."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'conversations_message'"
            )
            assert {name for (name,) in cursor.fetchall()} >= {
                f"{search.FTS_TABLE}_insert",
                f"{search.FTS_TABLE}_update",
                f"{search.FTS_TABLE}_delete",
            }
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'conversations_message_text_search'")
            assert "to_tsvector" in cursor.fetchone()[0]


def test_search_words_keep_only_those_with_a_letter_or_digit() -> None:
    assert search.words(' refund -- "order" \x00 1234 ... ü ') == ["refund", '"order"', "1234", "ü"]
    assert search.messages_matching("?!") is None


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


def test_the_queue_shows_how_customers_rated_each_conversation(desk: dict[str, Conversation], client: Client) -> None:
    """Thumbs up and down on answers and on the whole conversation, and what the latest thumbs down said
    (escaped: it is the customer's text)."""
    conversation = desk["mine"]
    question = conversation.messages.get()
    answer = Message.objects.create(conversation=conversation, role=Role.AGENT, text="done", reply_to=question)
    Rating.objects.create(conversation=conversation, message=question, answer=answer, score=-1, comment="too <slow>")
    Rating.objects.create(conversation=conversation, score=1)
    Rating.objects.create(conversation=desk["old"], score=1)
    html = page(client)
    rated = dict(
        (conversation_id, (int(up), int(down)))
        for conversation_id, up, down in re.findall(
            r'<tr data-conversation="([0-9a-f-]+)".*?data-rated-up="(\d+)" data-rated-down="(\d+)"', html, re.S
        )
    )
    assert rated[str(conversation.id)] == (1, 1) and rated[str(desk["old"].id)] == (1, 0)
    assert rated[str(desk["new"].id)] == (0, 0)
    assert "too &lt;slow&gt;" in html and "too <slow>" not in html
