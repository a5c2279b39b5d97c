"""Labels from work already done: the desk asks about messages people answered, with its best guesses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chatbot.llm.base import Generation
from support.conversations import actions
from support.conversations.models import Message, Tier
from support.review import actions as review_actions
from support.review.models import Label, LabelKind
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def asked(knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]]) -> Message:
    """A customer asks for a person about returning a sofa; people own the chat."""
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "q1", "I want a person: can I return a sofa my cat scratched?")
    message = Message.objects.get(client_id="q1")
    assert message.destination == "people"
    return message


def checked_choice(html: str, message: Message) -> str:
    part = html.split(f'data-label-for="{message.pk}"')[1]
    found = re.search(r'value="([^"]+)" checked', part)
    assert found is not None
    return found.group(1)


def test_nothing_is_asked_until_an_agent_has_answered(asked: Message, agent: User) -> None:
    page = logged_in(agent).get(f"/review/{asked.conversation_id}/").content.decode()
    assert "data-label-for" not in page
    actions.post_agent_reply(asked.conversation_id, agent, "Yes, within 30 days.")
    page = logged_in(agent).get(f"/review/{asked.conversation_id}/").content.decode()
    assert f'data-label-for="{asked.pk}"' in page


def test_one_click_confirms_the_pre_selected_guess_and_records_who_and_when(asked: Message, agent: User) -> None:
    actions.post_agent_reply(asked.conversation_id, agent, "Yes, within 30 days.")
    client = logged_in(agent)
    choice = checked_choice(client.get(f"/review/{asked.conversation_id}/").content.decode(), asked)
    assert choice.startswith("article:") and choice.endswith(":guess")
    slug = choice.split(":")[1]
    response = client.post(
        f"/review/{asked.conversation_id}/label/", {"message": asked.pk, "choice": choice}, follow=True
    )
    assert "Labelled: " + slug in response.content.decode()
    label = Label.objects.get(message=asked)
    assert (label.kind, label.article, label.proposed, label.given_by) == (LabelKind.ARTICLE, slug, "guess", agent)
    assert label.given_at is not None


def test_a_sent_draft_proposes_the_article_it_was_grounded_on(
    knowledge_base: None, small_model_dir: object, frames: list[dict[str, Any]], agent: User, settings: Any
) -> None:
    settings.TANDEM_REVIEW_LARGE_ANSWERS = ["low_confidence", "out_of_scope"]
    session = actions.open_session(None)
    post_as_server(session.conversation_id, "q1", "Can I return a sofa my cat scratched?")
    question = Message.objects.get(client_id="q1")
    draft = actions.store_large_answer(
        question.pk, Generation("You can.", 10, 2, "m"), [{"slug": "delivery-costs", "title": "Delivery costs"}]
    )
    assert draft is not None
    actions.approve_draft(session.conversation_id, draft.pk, agent)
    page = logged_in(agent).get(f"/review/{session.conversation_id}/").content.decode()
    assert checked_choice(page, question) == "article:delivery-costs:draft"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"choice": "new_topic"}, (LabelKind.NEW_TOPIC, "")),
        ({"choice": "not_support"}, (LabelKind.NOT_SUPPORT, "")),
        ({"choice": "other", "other_article": "delivery-costs"}, (LabelKind.ARTICLE, "delivery-costs")),
    ],
)
def test_the_agent_may_choose_another_article_a_new_topic_or_not_support(
    asked: Message, agent: User, form: dict[str, str], expected: tuple[str, str]
) -> None:
    actions.post_agent_reply(asked.conversation_id, agent, "Yes.")
    logged_in(agent).post(f"/review/{asked.conversation_id}/label/", {"message": asked.pk, **form})
    label = Label.objects.get(message=asked)
    assert (label.kind, label.article) == expected and label.proposed == ""


def test_a_new_label_replaces_the_old_one(asked: Message, agent: User, other_agent: User) -> None:
    review_actions.label_message(asked.pk, agent, LabelKind.NEW_TOPIC)
    review_actions.label_message(asked.pk, other_agent, LabelKind.ARTICLE, "delivery-costs")
    label = Label.objects.get(message=asked)
    assert (label.kind, label.article, label.given_by) == (LabelKind.ARTICLE, "delivery-costs", other_agent)


@pytest.mark.parametrize(
    ("kind", "article", "error"),
    [
        ("article", "no-such-article", "Choose the article"),
        ("spam", "", "Choose an article, new topic"),
    ],
)
def test_a_label_that_makes_no_sense_is_refused(
    asked: Message, agent: User, kind: str, article: str, error: str
) -> None:
    with pytest.raises(actions.ConversationError, match=error):
        review_actions.label_message(asked.pk, agent, kind, article)
    assert not Label.objects.exists()


def test_only_agents_label_and_only_customer_messages_of_this_conversation(
    asked: Message, agent: User, visitor: User
) -> None:
    with pytest.raises(actions.ConversationError, match="Only agents"):
        review_actions.label_message(asked.pk, visitor, LabelKind.NEW_TOPIC)
    reply = actions.post_agent_reply(asked.conversation_id, agent, "Yes.")
    with pytest.raises(actions.ConversationError, match="no such customer message"):
        review_actions.label_message(reply.pk, agent, LabelKind.NEW_TOPIC)
    other = actions.open_session(None)
    response = logged_in(agent).post(
        f"/review/{other.conversation_id}/label/", {"message": asked.pk, "choice": "new_topic"}, follow=True
    )
    assert "no such customer message" in response.content.decode()
    assert not Label.objects.exists()
    assert Message.objects.filter(tier=Tier.AGENT).count() == 1
