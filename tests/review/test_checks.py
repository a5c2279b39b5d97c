"""Spot checks: agents check a random sample of the small tier's answers, and that measures it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from support.conversations.actions import ConversationError
from support.conversations.models import Conversation, Message, Role, Tier
from support.review import actions as review_actions
from support.review import checks
from support.review.models import Label

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def answered(text: str, intent: str = "late-delivery", destination: str = "small") -> Message:
    """A customer message and the small tier's answer to it (or an escalation, by destination)."""
    conversation = Conversation.objects.create()
    message = Message.objects.create(
        conversation=conversation,
        role=Role.CUSTOMER,
        text=text,
        intent=intent,
        confidence=0.97,
        destination=destination,
    )
    if destination == "small":
        Message.objects.create(
            conversation=conversation, role=Role.BOT, text=f"The answer to {intent}", reply_to=message, tier=Tier.SMALL
        )
    return message


def sampled_and_not(count: int = 40) -> tuple[list[Message], list[Message]]:
    made = [answered(f"where is my parcel number {number}") for number in range(count)]
    inside = [message for message in made if checks.is_sampled(message)]
    return inside, [message for message in made if message not in inside]


@override_settings(TANDEM_SPOT_CHECK_SHARE=0.25)
def test_a_random_share_of_the_small_tier_s_answers_waits_for_a_check(knowledge_base: None, agent: User) -> None:
    inside, outside = sampled_and_not(200)
    assert 25 <= len(inside) <= 75, "about a quarter is sampled, spread over consecutive ids"
    assert set(checks.waiting()) == set(inside)
    html = logged_in(agent).get("/review/checks/").content.decode()
    assert '<p class="muted" id="no-checks">' not in html
    assert f">{len(inside)}</div>" in html
    shown = checks.waiting()[: checks.PAGE_SIZE]
    for message in shown:
        assert f'data-check="{message.pk}"' in html
        assert 'value="article:late-delivery:answer" checked' in html
    for message in outside:
        assert f'data-check="{message.pk}"' not in html
    queue = logged_in(agent).get("/review/").content.decode()
    assert f"{len(inside)} of the small tier's answers waiting to be checked" in queue


@override_settings(TANDEM_SPOT_CHECK_SHARE=1.0)
def test_escalations_and_small_talk_are_never_spot_checked(knowledge_base: None) -> None:
    escalated = answered("I want a person", destination="people")
    greeting = answered("hello there", intent="smalltalk-greeting")
    article = answered("where is my parcel")
    assert list(checks.waiting()) == [article]
    assert not checks.is_sampled(escalated) and not checks.is_sampled(greeting)


@override_settings(TANDEM_SPOT_CHECK_SHARE=0.0)
def test_with_a_share_of_zero_nothing_is_checked_and_the_page_says_so(knowledge_base: None, agent: User) -> None:
    answered("where is my parcel")
    assert not checks.waiting().exists()
    html = logged_in(agent).get("/review/checks/").content.decode()
    assert "spot checks are off" in html


@override_settings(TANDEM_SPOT_CHECK_SHARE=1.0)
def test_one_click_confirms_the_answer_and_the_checks_measure_the_small_tier(
    knowledge_base: None, agent: User, other_agent: User
) -> None:
    right = [answered(f"my order is late ({number})") for number in range(3)]
    wrong = answered("can I pay in instalments")
    client = logged_in(agent)
    for message in right:
        response = client.post(
            "/review/checks/label/", {"message": message.pk, "choice": "article:late-delivery:answer"}, follow=True
        )
        assert "the answer was right" in response.content.decode()
    response = logged_in(other_agent).post(
        "/review/checks/label/",
        {"message": wrong.pk, "choice": "other", "other_article": "pay-later-instalments"},
        follow=True,
    )
    assert "the answer was wrong" in response.content.decode()
    label = Label.objects.get(message=wrong)
    assert label.spot_check and label.given_by == other_agent and label.proposed == ""
    assert Label.objects.get(message=right[0]).proposed == "answer"
    assert not checks.waiting().exists()
    measured = checks.accuracy()
    assert (measured.checked, measured.right, measured.share) == (4, 3, 0.75)
    assert measured.interval is not None
    low, high = measured.interval
    assert 0.2 < low < 0.75 < high < 1.0
    html = client.get("/review/checks/").content.decode()
    assert 'id="checks-right">75 %' in html and "3 of 4" in html


@override_settings(TANDEM_SPOT_CHECK_SHARE=1.0)
def test_a_new_topic_or_not_support_verdict_counts_the_answer_as_wrong(knowledge_base: None, agent: User) -> None:
    first, second = answered("do you sell bikes"), answered("what is the weather")
    review_actions.label_message(first.pk, agent, "new_topic", spot_check=True)
    review_actions.label_message(second.pk, agent, "not_support", spot_check=True)
    assert (checks.accuracy().checked, checks.accuracy().right) == (2, 0)


@override_settings(TANDEM_SPOT_CHECK_SHARE=0.5)
def test_only_sampled_small_tier_answers_are_labelled_as_spot_checks(knowledge_base: None, agent: User) -> None:
    _, outside = sampled_and_not()
    escalated = answered("I want a person", destination="people")
    for message in (outside[0], escalated):
        with pytest.raises(ConversationError, match="not one of the small tier's answers"):
            review_actions.label_message(message.pk, agent, "article", "late-delivery", spot_check=True)
    response = logged_in(agent).post(
        "/review/checks/label/", {"message": outside[0].pk, "choice": "article:late-delivery:answer"}, follow=True
    )
    assert "not one of the small tier" in response.content.decode()
    for bad in ({"message": "x", "choice": "new_topic"}, {"message": outside[0].pk, "choice": "nonsense"}):
        response = logged_in(agent).post("/review/checks/label/", bad, follow=True)
        assert response.status_code == 200 and 'class="flash error"' in response.content.decode()
    assert not Label.objects.exists()


def test_only_agents_see_and_give_spot_checks(knowledge_base: None, visitor: User) -> None:
    message = answered("where is my parcel")
    for client in (Client(), logged_in(visitor)):
        assert client.get("/review/checks/").status_code in (302, 403)
        client.post("/review/checks/label/", {"message": message.pk, "choice": "article:late-delivery:answer"})
    assert not Label.objects.exists()
