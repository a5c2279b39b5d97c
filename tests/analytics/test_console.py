"""The manager's console pages: over time, by intent, the conversations behind a row, and CSV exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from support.analytics import rollups
from support.analytics.stats import day_bounds
from support.conversations.models import Conversation, Message, Role, Tier
from support.review.models import Label
from tests.analytics.conftest import answer, at, make

pytestmark = pytest.mark.django_db
RANGE = {"from": "2024-03-10", "to": "2024-03-12"}


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def conversation_at(when: Any) -> Conversation:
    conversation = Conversation.objects.create()
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when)
    rollups.mark([when])
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def by_intents(prices: None) -> dict[str, Conversation]:
    """Three intents, small talk and a message with no intent, in three conversations on 11 March."""
    bot = conversation_at(at(11, 9))
    for number in range(4):
        question = make(bot, at(11, 9, number), Role.CUSTOMER, destination="small", intent="late-delivery")
        answer(question, at(11, 9, number, 1), Tier.SMALL, cost_usd="0.00001")
    make(bot, at(11, 9, 10), Role.CUSTOMER, destination="small", intent="smalltalk-greeting")
    make(bot, at(11, 9, 11), Role.CUSTOMER, destination="small", intent="smalltalk-thanks")
    checked = Message.objects.filter(intent="late-delivery").order_by("id")
    for message, article in zip(checked[:2], ["late-delivery", "how-to-return"], strict=True):
        Label.objects.create(message=message, kind="article", article=article, spot_check=True, given_at=at(20))
    people = conversation_at(at(11, 10))
    make(people, at(11, 10, 1), Role.CUSTOMER, destination="people", intent="refund", escalation_reason="sensitive")
    make(people, at(11, 10, 2), Role.CUSTOMER, destination="large", intent="refund", escalation_reason="low_confidence")
    make(people, at(11, 10, 3), Role.CUSTOMER, destination="large", intent="refund", escalation_reason="low_confidence")
    other = conversation_at(at(12, 8))
    make(other, at(12, 8, 1), Role.CUSTOMER, destination="large", escalation_reason="out_of_scope")
    return {"bot": bot, "people": people, "other": other}


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-intent="([^"]*)"', html)


def test_the_intents_table_counts_each_intent_and_sorts_by_any_column(
    by_intents: dict[str, Conversation], agent: User
) -> None:
    client = logged_in(agent)
    html = client.get("/console/intents/", RANGE).content.decode()
    assert rows(html) == ["late-delivery", "refund", "small talk", "(no intent)"]
    late = html.split('data-intent="late-delivery"')[1].split("</tr>")[0]
    # 4 messages (of 10), all answered by the small tier, 2 spot-checked, 1 of them right.
    assert "4 <span" in late and "(40%)" in late and "1.000" in late and ">2<" in late and "0.500" in late
    refund = html.split('data-intent="refund"')[1].split("</tr>")[0]
    assert "low_confidence" in refund and "(2)" in refund and "1.000" in refund
    assert rows(client.get("/console/intents/", {**RANGE, "sort": "intent", "dir": "asc"}).content.decode()) == [
        "(no intent)",
        "late-delivery",
        "refund",
        "small talk",
    ]
    by_accuracy = client.get("/console/intents/", {**RANGE, "sort": "accuracy"}).content.decode()
    assert rows(by_accuracy)[0] == "late-delivery"
    # Nonsense sorting falls back to the default order; bad dates say what is wrong.
    assert rows(client.get("/console/intents/", {**RANGE, "sort": "drop table"}).content.decode())[0] == (
        "late-delivery"
    )
    bad = client.get("/console/intents/", {"from": "2024-03-12", "to": "2024-03-10"})
    assert bad.status_code == 400 and "is after" in bad.content.decode()


def test_an_intent_row_leads_to_the_conversations_behind_it(by_intents: dict[str, Conversation], agent: User) -> None:
    client = logged_in(agent)
    html = client.get("/console/intents/", RANGE).content.decode()
    link = re.search(r'href="(/console/conversations/\?[^"]*intent=refund)"', html)
    assert link is not None
    found = client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert re.findall(r'data-conversation="([^"]+)"', found) == [str(by_intents["people"].pk)]
    small_talk = client.get("/console/conversations/", {**RANGE, "intent": "small talk"}).content.decode()
    assert re.findall(r'data-conversation="([^"]+)"', small_talk) == [str(by_intents["bot"].pk)]
    every = client.get("/console/conversations/", RANGE).content.decode()
    assert len(re.findall(r"data-conversation=", every)) == 3
    with_people = client.get("/console/conversations/", {**RANGE, "people": "yes"}).content.decode()
    assert re.findall(r'data-conversation="([^"]+)"', with_people) == [str(by_intents["people"].pk)]
    assert "no person needed" in client.get("/console/conversations/", {**RANGE, "people": "no"}).content.decode()


def test_the_conversation_list_pages_through_a_range(prices: None, agent: User) -> None:
    for minute in range(55):
        conversation_at(at(11, 12, minute))
    client = logged_in(agent)
    first = client.get("/console/conversations/", RANGE).content.decode()
    assert len(re.findall(r"data-conversation=", first)) == 50 and 'id="next-page"' in first
    second = client.get("/console/conversations/", {**RANGE, "page": "2"}).content.decode()
    assert len(re.findall(r"data-conversation=", second)) == 5 and 'id="next-page"' not in second
    assert client.get("/console/conversations/", {**RANGE, "page": "x"}).status_code == 200


def read_csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_every_table_and_series_downloads_as_csv(by_intents: dict[str, Conversation], agent: User) -> None:
    client = logged_in(agent)
    summary = dict(read_csv(client.get("/console/export/summary.csv", RANGE))[1:])
    assert summary["messages"] == "10" and summary["destinations.small"] == "6"
    daily = read_csv(client.get("/console/export/series.csv", {**RANGE, "step": "day"}))
    assert [row[0] for row in daily] == ["start", "2024-03-10", "2024-03-11", "2024-03-12"]
    assert daily[2][daily[0].index("messages")] == "9"
    hourly = read_csv(client.get("/console/export/series.csv", {**RANGE, "step": "hour"}))
    assert len(hourly) == 1 + 72 and hourly[1][0] == "2024-03-10 00:00"
    # Every row has the header's columns, hours with no traffic and hours with other reasons alike.
    assert {len(row) for row in hourly + daily} == {len(hourly[0])} and hourly[0] == daily[0]
    out_of_scope = {row[0]: row[hourly[0].index("escalations_by_reason.out_of_scope")] for row in hourly[1:]}
    assert out_of_scope["2024-03-12 08:00"] == "1" and out_of_scope["2024-03-11 10:00"] == "0"
    reasons = read_csv(client.get("/console/export/reasons.csv", RANGE))
    assert reasons[1][:2] == ["low_confidence", "2"]
    intents = read_csv(client.get("/console/export/intents.csv", RANGE))
    assert [row[0] for row in intents[1:]] == ["late-delivery", "refund", "small talk", "(no intent)"]
    listed = read_csv(client.get("/console/export/conversations.csv", RANGE))
    assert {row[0] for row in listed[1:]} == {str(c.pk) for c in by_intents.values()}
    assert client.get("/console/export/secrets.csv", RANGE).status_code == 404
    assert client.get("/console/export/summary.csv", {"from": "yesterday"}).status_code == 400


def test_the_conversation_export_lists_each_conversation_as_the_page_does(
    by_intents: dict[str, Conversation], agent: User, settings: Any
) -> None:
    """Every column, in the site's time zone, newest first; the state as it is now (a close that no
    message followed); the page's filters apply to the export too."""
    settings.TIME_ZONE = "Europe/Paris"
    rollups.rebuild_all()  # the rows were made in UTC
    closed = by_intents["people"]
    closed.owner = "closed"
    closed.save(update_fields=["owner", "updated_at"])
    client = logged_in(agent)
    listed = read_csv(client.get("/console/export/conversations.csv", RANGE))
    assert listed == [
        ["conversation", "started", "state", "customer_messages", "with_people", "cost_usd"],
        [str(by_intents["other"].pk), "2024-03-12T09:00:00+01:00", "bot", "1", "no", "0.00000000"],
        [str(by_intents["people"].pk), "2024-03-11T11:00:00+01:00", "closed", "3", "yes", "0.00000000"],
        [str(by_intents["bot"].pk), "2024-03-11T10:00:00+01:00", "bot", "6", "no", "0.00004000"],
    ]
    for filters, expected in (
        ({"intent": "refund"}, ["people"]),
        ({"intent": "refund", "destination": "people"}, ["people"]),
        ({"intent": "refund", "destination": "small"}, []),
        ({"intent": "small talk"}, ["bot"]),
        ({"intent": "small talk", "destination": "small"}, ["bot"]),
        ({"intent": "small talk", "destination": "large"}, []),
        ({"intent": "late"}, []),
        ({"intent": "(no intent)"}, ["other"]),
        ({"intent": "(no intent)", "destination": "large"}, ["other"]),
        ({"destination": "large"}, ["other", "people"]),
        ({"destination": "people", "people": "no"}, []),
        ({"people": "no"}, ["other", "bot"]),
    ):
        page = client.get("/console/conversations/", {**RANGE, **filters}).content.decode()
        export = read_csv(client.get("/console/export/conversations.csv", {**RANGE, **filters}))
        assert [row[0] for row in export[1:]] == [str(by_intents[name].pk) for name in expected], filters
        assert re.findall(r'data-conversation="([^"]+)"', page) == [row[0] for row in export[1:]], filters


def test_the_conversation_list_reads_hours_in_chunks_without_losing_or_repeating_a_row(
    prices: None, agent: User
) -> None:
    """An hour a chunk, with conversations started at the same instant and in hours next to each other."""
    same = [conversation_at(at(11, 9)) for _ in range(5)]
    others = [conversation_at(at(11, hour, 59)) for hour in (10, 11, 12, 14)]
    for conversation in others:
        make(conversation, conversation.created_at, Role.CUSTOMER, destination="large")
    span = day_bounds(date(2024, 3, 10), date(2024, 3, 12))
    whole = "".join(rollups.conversation_lines(*span))
    assert "".join(rollups.conversation_lines(*span, hours_at_once=1)) == whole
    expected = sorted(same + others, key=lambda c: (c.created_at, c.pk), reverse=True)
    assert [line.split(",")[0] for line in whole.split("\r\n")[:-1]] == [str(c.pk) for c in expected]
    large = "".join(rollups.conversation_lines(*span, keep=lambda key: ">large|" in key, hours_at_once=1))
    assert [line.split(",")[0] for line in large.split("\r\n")[:-1]] == [str(c.pk) for c in reversed(others)]
    client = logged_in(agent)
    exported = read_csv(client.get("/console/export/conversations.csv", {**RANGE, "destination": "large"}))
    assert [row[0] for row in exported[1:]] == [str(c.pk) for c in reversed(others)]


def test_the_whole_export_lists_what_the_filtered_one_does_in_a_zone_whose_days_start_mid_hour(
    prices: None, agent: User, settings: Any
) -> None:
    """India's days start at 18:30 UTC: the export reads the hours inside the range whole, and the
    conversations of the half hours at either end one by one (none from outside the range)."""
    settings.TIME_ZONE = "Asia/Kolkata"
    # 10-12 March in Kolkata: [9 March 18:30 UTC, 12 March 18:30 UTC).
    inside = [
        conversation_at(moment)
        for moment in (at(9, 18, 30), at(9, 18, 59), at(9, 19, 0), at(11, 3, 15), at(12, 18, 0), at(12, 18, 29, 59))
    ]
    twins = [conversation_at(at(11, 3, 15)) for _ in range(3)]  # one instant, ordered by id
    outside = [conversation_at(moment) for moment in (at(9, 18, 29, 59), at(12, 18, 30), at(9, 12), at(13, 1))]
    make(inside[3], at(11, 3, 16), Role.CUSTOMER, destination="people")
    client = logged_in(agent)
    whole = read_csv(client.get("/console/export/conversations.csv", RANGE))
    expected = sorted(inside + twins, key=lambda c: (c.created_at, c.pk), reverse=True)
    assert [row[0] for row in whole[1:]] == [str(c.pk) for c in expected]
    assert not {row[0] for row in whole} & {str(c.pk) for c in outside}
    assert whole[1][1] == "2024-03-12T23:59:59+05:30" and whole[-1][1] == "2024-03-10T00:00:00+05:30"
    # The filtered export says the same of the same conversations (the edges' rows tested one by one).
    with_people = read_csv(client.get("/console/export/conversations.csv", {**RANGE, "people": "yes"}))
    without = read_csv(client.get("/console/export/conversations.csv", {**RANGE, "people": "no"}))
    assert with_people[1:] == [row for row in whole[1:] if row[4] == "yes"] and len(with_people) == 2
    assert without[1:] == [row for row in whole[1:] if row[4] == "no"]
    # A conversation that changes later changes its line in the whole export too.
    inside[0].owner = "closed"
    inside[0].save(update_fields=["owner", "updated_at"])
    again = read_csv(client.get("/console/export/conversations.csv", RANGE))
    assert again[-1][2] == "closed" and again[:-1] == whole[:-1]


def test_a_cell_a_spreadsheet_would_run_is_exported_as_text(prices: None, agent: User) -> None:
    conversation = conversation_at(at(11, 9))
    make(conversation, at(11, 9, 1), Role.CUSTOMER, destination="small", intent="=HYPERLINK(1)")
    intents = read_csv(logged_in(agent).get("/console/export/intents.csv", RANGE))
    assert intents[1][0] == "'=HYPERLINK(1)"


def test_the_console_draws_hourly_for_short_ranges_and_daily_for_long_ones(traffic: None, agent: User) -> None:
    client = logged_in(agent)
    short = client.get("/console/", {"from": "2024-03-11", "to": "2024-03-11"}).content.decode()
    assert '<option value="hour" selected>' in short and "2024-03-11 13:00" in short
    long = client.get("/console/", {"from": "2024-01-01", "to": "2024-03-31", "step": "hour"}).content.decode()
    assert '<option value="day" selected>' in long and "2024-03-11" in long and "2024-03-11 13:00" not in long
    assert "chart.umd.min.js" in long and 'id="chart-cost"' in long


def test_nothing_in_the_console_is_computed_twice_after_a_late_answer(prices: None, agent: User) -> None:
    """The page and its CSV agree, before and after an answer changes the past (rollups rebuilt)."""
    client = logged_in(agent)
    question = make(conversation_at(at(11, 9)), at(11, 9, 1), Role.CUSTOMER, destination="large")
    before = dict(read_csv(client.get("/console/export/summary.csv", RANGE))[1:])
    answer(question, timezone.now(), Tier.LARGE, cost_usd="0.5", input_tokens=10)
    after = dict(read_csv(client.get("/console/export/summary.csv", RANGE))[1:])
    assert (before["cost_usd.large"], after["cost_usd.large"]) == ("0.0", "0.5")


def test_the_console_says_when_the_small_model_is_out_of_date(
    knowledge_base: None, small_model_dir: object, agent: User, prices: None
) -> None:
    from support.knowledge.models import Article, Phrasing

    client = logged_in(agent)
    assert 'id="model-out-of-date"' not in client.get("/console/", RANGE).content.decode(), "trained on the demo"
    article = Article.objects.first()
    assert article is not None
    Phrasing.objects.create(article=article, text="a brand new way to ask")
    html = client.get("/console/", RANGE).content.decode()
    assert 'id="model-out-of-date"' in html and "train a new one" in html and 'href="/model/"' in html
