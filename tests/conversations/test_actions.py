"""The conversation's writes: numbering, deduplication, routing, ownership."""

from __future__ import annotations

import time
from collections.abc import Iterator
from unittest import mock

import pytest
from django.contrib.auth.models import User

from chatbot.llm.base import Generation
from chatbot.routing import Incoming, Routed, route_many
from chatbot.small.model import get_small_model
from support.conversations import actions
from support.conversations.models import Conversation, Event, Message, Owner, Tier
from tests.conftest import post_as_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent() -> Iterator[list[dict]]:
    """Frames broadcast to sockets (after commit)."""
    frames: list[dict] = []
    with (
        mock.patch(
            "support.conversations.broadcast.send_to_conversation",
            side_effect=lambda _id, *sent, skip=None: frames.extend(sent),
        ),
        mock.patch("support.conversations.broadcast.send_to_staff"),
    ):
        yield frames


@pytest.fixture
def enqueued() -> Iterator[mock.MagicMock]:
    with mock.patch("support.conversations.tasks.answer_with_large_model.delay") as delay:
        yield delay


@pytest.fixture
def conversation(knowledge_base: None, small_model_dir: object) -> Conversation:
    session = actions.open_session(None)
    return Conversation.objects.get(pk=session.conversation_id)


def post(conversation: Conversation, client_id: str, text: str) -> actions.Posted:
    return post_as_server(conversation.id, client_id, text)


def routed(text: str) -> Routed:
    return route_many(get_small_model(), [Incoming(text)])[0]


def test_a_routine_question_is_answered_by_the_small_model(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        posted = post(conversation, "m1", "How do I reset my password?")
    assert posted.ack == {"type": "ack", "seq": 1, "id": "m1", "text": "How do I reset my password?"}
    assert [f["type"] for f in sent] == ["ack", "answer"]
    # The posting socket sends the same events itself, without waiting for the channel layer.
    assert list(posted.events) == sent
    answer = sent[1]
    assert answer["tier"] == "small" and answer["intent"] == "reset-password" and answer["reply_to"] == "m1"
    stored = Message.objects.get(tier=Tier.SMALL)
    assert stored.input_tokens > 0 and stored.cost_usd > 0 and stored.model_name == "all-MiniLM-L6-v2"
    enqueued.assert_not_called()


def test_a_routine_answer_takes_one_select_five_inserts_and_one_update(
    conversation: Conversation, sent: list[dict], django_assert_num_queries
) -> None:
    question = "How do I reset my password?"
    post(conversation, "m0", question)  # the article's answer is cached from here on
    # As the server calls it, routed beforehand. The transaction's start and end (a savepoint in a
    # test), the locked conversation, the two messages, last_seq, and both events in one INSERT; and
    # for each message, its hour marked for the console's rollups (support/analytics/rollups.py).
    verdict = routed(question)
    with django_assert_num_queries(9):
        posted = actions.post_customer_message(conversation.id, "m1", question, verdict, "socket-1")
    assert [event["type"] for event in posted.events] == ["ack", "answer"]
    assert list(Event.objects.filter(conversation=conversation).values_list("seq", flat=True)) == [1, 2, 3, 4]
    conversation.refresh_from_db()
    assert conversation.last_seq == 4


def test_an_edited_article_is_answered_with_its_new_text(
    conversation: Conversation, sent: list[dict], django_capture_on_commit_callbacks
) -> None:
    from support.knowledge.models import Article

    first = post(conversation, "m1", "How do I reset my password?").events[1]
    Article.objects.filter(slug=first["intent"]).update(answer="stale")  # no signal: the cache may hold the old text
    article = Article.objects.get(slug=first["intent"])
    article.answer = "Use the 'Forgot password' link on the sign-in page."
    with django_capture_on_commit_callbacks(execute=False) as committed:
        article.save()
    # Until the edit commits, the cached text stands.
    assert post(conversation, "m2", "How do I reset my password?").events[1]["text"] == first["text"]
    for callback in committed:
        callback()
    again = post(conversation, "m3", "How do I reset my password?").events[1]
    assert again["text"] == "Use the 'Forgot password' link on the sign-in page."


def test_an_escalation_is_recorded_and_the_large_model_is_queued_after_commit(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
        enqueued.assert_not_called()
    for callback in callbacks:
        callback()
    message = Message.objects.get(client_id="m1")
    enqueued.assert_called_once_with(message.id)
    assert message.escalation_reason in {"out_of_scope", "low_confidence"}
    assert sent[-1] == {
        "type": "escalated",
        "seq": 2,
        "reply_to": "m1",
        "reason": message.escalation_reason,
        "destination": "large",
        "text": "Let me look into that for you.",
    }
    conversation.refresh_from_db()
    assert conversation.owner == Owner.PENDING and conversation.escalated_at is not None
    assert message.destination == "large" and conversation.escalation_destination == "large"


def test_the_escalated_event_is_sent_before_the_large_model_is_queued(
    conversation: Conversation, django_capture_on_commit_callbacks
) -> None:
    order: list[str] = []
    with (
        mock.patch(
            "support.conversations.broadcast.send_to_conversation",
            side_effect=lambda _id, *frames, skip=None: order.extend(frame["type"] for frame in frames),
        ),
        mock.patch("support.conversations.broadcast.send_to_staff", side_effect=lambda _: order.append("staff")),
        mock.patch(
            "support.conversations.tasks.answer_with_large_model.delay", side_effect=lambda _: order.append("queued")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
    assert order == ["ack", "escalated", "staff", "queued"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("can I speak to a human please", "human_requested"),
        ("someone used my card for a purchase I never made", "sensitive"),
    ],
)
def test_people_and_sensitive_topics_go_to_people(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, text: str, reason: str
) -> None:
    escalated = post(conversation, "m1", text).events[-1]
    message = Message.objects.get(client_id="m1")
    assert (message.escalation_reason, message.destination) == (reason, "people")
    assert escalated["destination"] == "people" and "member of our team" in escalated["text"]
    conversation.refresh_from_db()
    assert conversation.owner == Owner.PEOPLE


def test_a_conversation_sent_to_people_gets_no_bot_answer_until_an_agent_hands_it_back(
    conversation: Conversation, agent: User, sent: list[dict], enqueued: mock.MagicMock
) -> None:
    post(conversation, "m1", "can I speak to a human please")
    post(conversation, "m2", "How do I reset my password?")
    assert not Message.objects.filter(role="bot").exists()
    assert Message.objects.get(client_id="m2").destination == ""  # not even classified
    assert [e["type"] for e in actions.events_after(conversation.id, 0)] == ["ack", "escalated", "ack"]
    actions.hand_back(conversation.id, agent)
    post(conversation, "m3", "How do I reset my password?")
    assert Message.objects.filter(tier=Tier.SMALL).count() == 1


def test_a_large_answer_in_flight_when_the_customer_asks_for_a_person_becomes_a_draft(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock
) -> None:
    post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
    first = Message.objects.get(client_id="m1")
    assert first.destination == "large"
    assert actions.bot_may_reply(first.id)
    post(conversation, "m2", "I want to talk to a human agent please")
    assert not actions.bot_may_reply(first.id)
    late = actions.store_large_answer(first.id, Generation("About 11 m/s.", 300, 9, "SmolLM2-135M-Instruct"))
    assert late is not None and not late.delivered
    assert [e["type"] for e in actions.events_after(conversation.id, 0)] == ["ack", "escalated", "ack", "escalated"]


def test_a_sensitive_topic_gets_a_large_model_draft_but_a_request_for_a_person_does_not(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        post(conversation, "m1", "someone used my card for a purchase I never made")
    enqueued.assert_called_once_with(Message.objects.get(client_id="m1").id)
    draft = actions.store_large_answer(
        Message.objects.get(client_id="m1").id, Generation("Draft.", 10, 2, "SmolLM2-135M-Instruct")
    )
    assert draft is not None and not draft.delivered

    other = Conversation.objects.get(pk=actions.open_session(None).conversation_id)
    enqueued.reset_mock()
    with django_capture_on_commit_callbacks(execute=True):
        post(other, "m1", "can I speak to a human please")
    enqueued.assert_not_called()


def test_a_repeated_client_id_returns_the_stored_ack_and_does_nothing_else(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock
) -> None:
    first = post(conversation, "m1", "How do I reset my password?")
    again = post(conversation, "m1", "How do I reset my password?")
    assert again.duplicate and again.ack == first.ack
    assert Message.objects.filter(client_id="m1").count() == 1
    assert Event.objects.filter(conversation=conversation).count() == 2


def test_a_repeated_client_id_from_the_server_path_is_caught_by_the_constraint(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock
) -> None:
    # The server routes first and passes the verdict; no lookup precedes the insert.
    verdict = routed("How do I reset my password?")
    first = actions.post_customer_message(conversation.id, "m1", "How do I reset my password?", verdict)
    again = actions.post_customer_message(conversation.id, "m1", "How do I reset my password?", verdict)
    assert not first.duplicate and [event["type"] for event in first.events] == ["ack", "answer"]
    assert again.duplicate and again.ack == first.ack and again.events == ()
    assert Message.objects.filter(client_id="m1").count() == 1
    assert Event.objects.filter(conversation=conversation).count() == 2


def test_events_are_numbered_per_conversation(conversation: Conversation, sent: list[dict], enqueued) -> None:
    other = Conversation.objects.get(pk=actions.open_session(None).conversation_id)
    post(conversation, "a", "How do I reset my password?")
    post(other, "a", "How do I reset my password?")
    post(conversation, "b", "How do I get a VAT invoice?")
    assert [e["seq"] for e in actions.events_after(conversation.id, 0)] == [1, 2, 3, 4]
    assert [e["seq"] for e in actions.events_after(other.id, 0)] == [1, 2]
    assert [e["seq"] for e in actions.events_after(conversation.id, 2)] == [3, 4]


def test_a_token_resumes_its_conversation_and_a_forged_one_does_not(conversation: Conversation) -> None:
    token = actions.make_token(conversation.id)
    resumed = actions.open_session(token)
    assert (resumed.conversation_id, resumed.resumed) == (conversation.id, True)
    forged = actions.open_session(token[:-2] + "xx")
    assert not forged.resumed and forged.conversation_id != conversation.id


def test_a_token_past_its_age_starts_a_new_conversation_and_each_session_gets_a_fresh_one(
    conversation: Conversation, settings
) -> None:
    settings.TANDEM_TOKEN_MAX_AGE_DAYS = 30
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 29 * 86400):
        old = actions.make_token(conversation.id)
    renewed = actions.open_session(old)
    assert renewed.resumed and renewed.token != old
    # The renewed token is good for another 30 days; the old one runs out on its own day.
    with mock.patch("django.core.signing.time.time", return_value=time.time() + 2 * 86400):
        assert actions.conversation_for_token(renewed.token) == conversation.id
        assert actions.conversation_for_token(old) is None
        assert not actions.open_session(old).resumed


def test_the_large_answer_is_stored_once(conversation: Conversation, sent: list[dict], enqueued) -> None:
    post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
    message = Message.objects.get(client_id="m1")
    generation = Generation(text="About 11 m/s.", input_tokens=300, output_tokens=9, model="SmolLM2-135M-Instruct")
    answer = actions.store_large_answer(message.id, generation)
    assert answer is not None and answer.cost_usd > 0 and answer.delivered
    assert actions.store_large_answer(message.id, generation) is None
    assert actions.start_large_job(message.id).message is None
    events = actions.events_after(conversation.id, 0)
    assert [e["type"] for e in events] == ["ack", "escalated", "answer"]
    assert events[-1]["tier"] == "large" and events[-1]["text"] == "About 11 m/s."
    conversation.refresh_from_db()
    assert conversation.owner == Owner.BOT


def test_once_an_agent_takes_over_the_bots_stay_quiet(
    conversation: Conversation, agent: User, sent: list[dict], enqueued
) -> None:
    post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
    actions.take_over(conversation.id, agent)
    post(conversation, "m2", "How do I reset my password?")
    assert not Message.objects.filter(tier=Tier.SMALL).exists()
    # The large model's late answer becomes a draft for the agent, not a message to the customer.
    draft = actions.store_large_answer(
        Message.objects.get(client_id="m1").id, Generation("Draft.", 10, 2, "SmolLM2-135M-Instruct")
    )
    assert draft is not None and not draft.delivered
    assert [e["type"] for e in actions.events_after(conversation.id, 0)] == ["ack", "escalated", "ack"]

    reply = actions.post_agent_reply(conversation.id, agent, "Hello, Alex here.")
    event = actions.events_after(conversation.id, 3)[0]
    assert event["tier"] == "agent" and event["agent"] == "Alex" and event["reply_to"] == "m2"
    assert reply.tier == Tier.AGENT

    actions.hand_back(conversation.id, agent)
    post(conversation, "m3", "How do I reset my password?")
    assert Message.objects.filter(tier=Tier.SMALL).count() == 1


def test_two_agents_cannot_own_one_conversation(conversation: Conversation, agent: User, other_agent: User) -> None:
    actions.take_over(conversation.id, agent)
    with pytest.raises(actions.ConversationError) as refused:
        actions.post_agent_reply(conversation.id, other_agent, "Me too!")
    assert refused.value.code == "owned_by_another_agent"
    with pytest.raises(actions.ConversationError):
        actions.take_over(conversation.id, other_agent)
    assert not Message.objects.filter(author=other_agent).exists()


def test_an_empty_agent_reply_is_refused(conversation: Conversation, agent: User) -> None:
    with pytest.raises(actions.ConversationError) as refused:
        actions.post_agent_reply(conversation.id, agent, "   ")
    assert refused.value.code == "empty_text"


def test_a_failed_large_model_leaves_the_question_with_the_agents(
    conversation: Conversation, sent: list[dict], enqueued
) -> None:
    post(conversation, "m1", "what is the airspeed velocity of an unladen swallow")
    actions.large_answer_failed(Message.objects.get(client_id="m1").id, "server down")
    event = actions.events_after(conversation.id, 2)[0]
    assert (event["reason"], event["destination"]) == ("large_model_failed", "people")
    conversation.refresh_from_db()
    assert conversation.escalated_at is not None and conversation.owner == Owner.PEOPLE


def test_without_a_trained_model_every_message_escalates(
    knowledge_base: None, tmp_path, settings, sent: list[dict], enqueued
) -> None:
    settings.TANDEM_SMALL_MODEL_DIR = tmp_path
    with mock.patch("chatbot.small.model._loaded", None):
        session = actions.open_session(None)
        post_as_server(session.conversation_id, "m1", "How do I reset my password?")
    assert Message.objects.get(client_id="m1").escalation_reason == "model_unavailable"


HARD_QUESTION = "what is the airspeed velocity of an unladen swallow"


def test_a_conversation_over_its_large_model_budget_goes_to_people_without_a_large_model_job(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, settings, django_capture_on_commit_callbacks
) -> None:
    settings.TANDEM_LIMIT_CONVERSATION_ESCALATIONS = 2
    with django_capture_on_commit_callbacks(execute=True):
        for number in range(3):
            post(conversation, f"h{number}", f"{HARD_QUESTION} {number}")
    assert enqueued.call_count == 2
    third = Message.objects.get(client_id="h2")
    assert (third.escalation_reason, third.destination) == ("escalation_limit", "people")
    escalated = [frame for frame in sent if frame["type"] == "escalated"]
    assert [frame["destination"] for frame in escalated] == ["large", "large", "people"]
    assert "busier than usual" in escalated[-1]["text"]
    conversation.refresh_from_db()
    assert conversation.owner == Owner.PEOPLE


def test_too_many_conversations_waiting_for_the_large_model_send_the_next_to_people(
    conversation: Conversation, sent: list[dict], enqueued: mock.MagicMock, settings
) -> None:
    settings.TANDEM_LIMIT_QUEUED_LARGE = 2
    Conversation.objects.bulk_create([Conversation(owner=Owner.PENDING), Conversation(owner=Owner.PENDING)])
    post(conversation, "q1", HARD_QUESTION)
    message = Message.objects.get(client_id="q1")
    assert (message.escalation_reason, message.destination) == ("escalation_limit", "people")
    enqueued.assert_not_called()
