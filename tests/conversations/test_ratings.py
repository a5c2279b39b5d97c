"""Customer satisfaction: a customer rates an answer (or the whole conversation) thumbs up or down, with an
optional comment, through the chat socket's `rating` frame; a later rating replaces the earlier one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from support.conversations import actions
from support.conversations.consumers import ChatConsumer
from support.conversations.models import Conversation, Message, Rating, Tier
from support.conversations.protocol import (
    MAX_RATING_COMMENT_CHARS,
    CustomerRating,
    FrameError,
    parse_client_frame,
    token_subprotocol,
)
from tests.conftest import post_as_server

ROUTINE = "How do I reset my password?"


def rating(**fields: Any) -> str:
    return json.dumps({"type": "rating", "id": "r1", "reply_to": "m1", "score": 1, **fields})


# --- the frame -----------------------------------------------------------------------------------------------


def test_a_thumbs_down_with_a_comment_is_parsed_and_the_comment_trimmed() -> None:
    frame = parse_client_frame(rating(score=-1, comment="  The link is broken.  "))
    assert frame == CustomerRating(client_id="r1", reply_to="m1", score=-1, comment="The link is broken.")


def test_a_rating_of_the_whole_conversation_names_no_message_and_needs_no_comment() -> None:
    assert parse_client_frame(rating(reply_to=None)) == CustomerRating("r1", None, 1, "")
    assert parse_client_frame(rating(comment=None)) == CustomerRating("r1", "m1", 1, "")


def test_a_comment_of_exactly_the_longest_length_is_allowed() -> None:
    comment = "é" * MAX_RATING_COMMENT_CHARS
    frame = parse_client_frame(rating(comment=comment))
    assert isinstance(frame, CustomerRating) and frame.comment == comment


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"reply_to": 7}, "invalid_reply_to"),
        ({"reply_to": ""}, "invalid_reply_to"),
        ({"reply_to": "x" * 101}, "invalid_reply_to"),
        ({"reply_to": "a\x00"}, "invalid_reply_to"),
        ({"score": 0}, "invalid_score"),
        ({"score": 2}, "invalid_score"),
        ({"score": "1"}, "invalid_score"),
        ({"score": True}, "invalid_score"),
        ({"score": 1.0}, "invalid_score"),
        ({"score": None}, "invalid_score"),
        ({"comment": 5}, "invalid_comment"),
        ({"comment": ["bad"]}, "invalid_comment"),
        ({"comment": "a\x07b"}, "invalid_comment"),
        ({"comment": "\ud800"}, "invalid_comment"),
        ({"comment": "a" * (MAX_RATING_COMMENT_CHARS + 1)}, "comment_too_long"),
        ({"id": ""}, "invalid_id"),
    ],
)
def test_bad_ratings_are_named(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(rating(**fields))
    assert error.value.code == code
    if code != "invalid_id":
        assert error.value.client_id == "r1"  # the widget knows which of its ratings failed


@pytest.mark.parametrize("missing", ["id", "reply_to", "score"])
def test_a_rating_without_a_field_it_needs_is_refused(missing: str) -> None:
    frame = json.loads(rating())
    del frame[missing]
    with pytest.raises(FrameError) as error:
        parse_client_frame(json.dumps(frame))
    assert error.value.code == "missing_field"


# --- the action ----------------------------------------------------------------------------------------------


@pytest.fixture
def conversation(knowledge_base: None, small_model_dir: object) -> Conversation:
    session = actions.open_session(None)
    return Conversation.objects.get(pk=session.conversation_id)


@pytest.mark.django_db
def test_a_customer_rates_a_small_model_answer_and_the_answer_and_its_tier_are_kept(
    conversation: Conversation, frames: list[dict[str, Any]], django_capture_on_commit_callbacks
) -> None:
    post_as_server(conversation.id, "m1", ROUTINE)
    with django_capture_on_commit_callbacks(execute=True):
        rated = actions.rate(conversation.id, "r1", "m1", -1, "Not what I asked.")
    assert rated == {"type": "rated", "id": "r1", "reply_to": "m1", "score": -1, "comment": "Not what I asked."}
    stored = Rating.objects.get()
    answer = Message.objects.get(tier=Tier.SMALL)
    assert (stored.conversation_id, stored.message, stored.answer) == (conversation.id, answer.reply_to, answer)
    assert (stored.score, stored.comment) == (-1, "Not what I asked.")
    assert (stored.tier, stored.destination) == ("small", "small")
    # The conversation's other tabs hear of it too (with no id: it was not their frame).
    assert frames[-1] == {**rated, "id": None}


@pytest.mark.django_db
def test_rating_the_same_answer_again_replaces_the_earlier_rating(
    conversation: Conversation, frames: list[dict[str, Any]]
) -> None:
    post_as_server(conversation.id, "m1", ROUTINE)
    actions.rate(conversation.id, "r1", "m1", 1, "")
    first = Rating.objects.get()
    actions.rate(conversation.id, "r2", "m1", -1, "On second thought, the link is dead.")
    again = Rating.objects.get()
    assert again.pk == first.pk
    assert (again.score, again.comment) == (-1, "On second thought, the link is dead.")
    assert again.created_at == first.created_at and again.updated_at > first.updated_at


@pytest.mark.django_db
def test_the_whole_conversation_is_rated_once_beside_its_answers(
    conversation: Conversation, frames: list[dict[str, Any]], agent: User
) -> None:
    post_as_server(conversation.id, "m1", ROUTINE)
    actions.rate(conversation.id, "r1", "m1", 1, "")
    actions.post_agent_reply(conversation.id, agent, "Anything else I can do?")
    actions.close(conversation.id, agent)
    actions.rate(conversation.id, "r2", None, 1, "")
    actions.rate(conversation.id, "r3", None, -1, "Took a while.")
    overall = Rating.objects.get(message=None)
    assert (overall.score, overall.comment, overall.tier, overall.destination) == (-1, "Took a while.", "agent", "")
    assert overall.answer is not None and overall.answer.text == "Anything else I can do?"
    assert Rating.objects.count() == 2
    assert actions.ratings_of(conversation.id) == [
        {"type": "rated", "id": None, "reply_to": "m1", "score": 1, "comment": ""},
        {"type": "rated", "id": None, "reply_to": None, "score": -1, "comment": "Took a while."},
    ]


@pytest.mark.django_db
def test_a_message_of_another_conversation_cannot_be_rated(
    conversation: Conversation, frames: list[dict[str, Any]]
) -> None:
    post_as_server(conversation.id, "m1", ROUTINE)
    stranger = actions.open_session(None).conversation_id
    with pytest.raises(actions.ConversationError) as error:
        actions.rate(stranger, "r1", "m1", -1, "")
    assert error.value.code == "unknown_message"
    assert not Rating.objects.exists()


@pytest.mark.django_db
def test_a_message_nobody_has_answered_yet_cannot_be_rated(
    conversation: Conversation, frames: list[dict[str, Any]]
) -> None:
    post_as_server(conversation.id, "m1", "I want to speak to a human")
    with pytest.raises(actions.ConversationError) as error:
        actions.rate(conversation.id, "r1", "m1", 1, "")
    assert error.value.code == "not_answered"


# --- through the chat socket -------------------------------------------------------------------------------


async def chat_socket(token: str | None = None, after: int | None = None) -> tuple[WebsocketCommunicator, dict]:
    protocols = ["tandem.v1", *([token_subprotocol(token)] if token else [])]
    path = "/ws/chat/" + (f"?after={after}" if after is not None else "")
    socket = WebsocketCommunicator(ChatConsumer.as_asgi(), path, subprotocols=protocols)
    socket.scope["client"] = ("198.51.100.20", 50000)
    connected, _ = await socket.connect(timeout=10)
    assert connected
    session = await socket.receive_json_from(timeout=10)
    assert session["type"] == "session"
    return socket, session


async def frame_of(socket: WebsocketCommunicator, wanted: str) -> dict[str, Any]:
    while True:
        frame = await socket.receive_json_from(timeout=10)
        if frame["type"] == wanted:
            return frame


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_customer_rates_an_answer_on_the_socket_and_a_fresh_page_sees_the_rating(
    knowledge_base: None, small_model_dir: object
) -> None:
    socket, session = await chat_socket()
    await socket.send_json_to({"type": "message", "id": "m1", "text": ROUTINE})
    answer = await frame_of(socket, "answer")
    assert answer["reply_to"] == "m1"
    await socket.send_json_to({"type": "rating", "id": "r1", "reply_to": "m1", "score": -1, "comment": "Too vague"})
    assert await socket.receive_json_from(timeout=10) == {
        "type": "rated",
        "id": "r1",
        "reply_to": "m1",
        "score": -1,
        "comment": "Too vague",
    }
    stored = await database_sync_to_async(Rating.objects.get)()
    assert (stored.score, stored.comment, stored.tier) == (-1, "Too vague", "small")
    await socket.disconnect()
    # A fresh page replays everything, then the ratings given (not stored events: no seq).
    fresh, _ = await chat_socket(session["token"], after=0)
    replayed = [await fresh.receive_json_from(timeout=10) for _ in range(3)]
    assert [frame["type"] for frame in replayed] == ["ack", "answer", "rated"]
    assert replayed[-1] == {"type": "rated", "id": None, "reply_to": "m1", "score": -1, "comment": "Too vague"}
    await fresh.disconnect()
    # A reconnect that already has it all is not told again.
    reconnected, _ = await chat_socket(session["token"], after=2)
    assert await reconnected.receive_nothing(timeout=0.3)
    await reconnected.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_bad_rating_on_the_socket_gets_an_error_naming_it_and_the_socket_stays_open(
    knowledge_base: None, small_model_dir: object
) -> None:
    socket, _ = await chat_socket()
    await socket.send_json_to({"type": "rating", "id": "r1", "reply_to": "m1", "score": 5})
    error = await socket.receive_json_from(timeout=10)
    assert (error["type"], error["code"], error["id"]) == ("error", "invalid_score", "r1")
    await socket.send_json_to({"type": "rating", "id": "r2", "reply_to": "nope", "score": 1})
    error = await socket.receive_json_from(timeout=10)
    assert (error["type"], error["code"], error["id"]) == ("error", "unknown_message", "r2")
    # Still open: a message goes through.
    await socket.send_json_to({"type": "message", "id": "m1", "text": ROUTINE})
    assert (await frame_of(socket, "answer"))["reply_to"] == "m1"
    assert not await database_sync_to_async(Rating.objects.exists)()
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ratings_count_against_the_sockets_flood_limit_like_messages(
    knowledge_base: None, small_model_dir: object
) -> None:
    # A socket may send 8 frames within 10 seconds (TANDEM_LIMIT_SOCKET_MESSAGES): a question, then 7 ratings.
    socket, _ = await chat_socket()
    await socket.send_json_to({"type": "message", "id": "m1", "text": ROUTINE})
    await frame_of(socket, "answer")
    for number in range(1, 8):
        score = 1 if number % 2 else -1
        await socket.send_json_to({"type": "rating", "id": f"r{number}", "reply_to": "m1", "score": score})
        assert (await frame_of(socket, "rated"))["id"] == f"r{number}"
    await socket.send_json_to({"type": "rating", "id": "r8", "reply_to": "m1", "score": -1})
    refused = await socket.receive_json_from(timeout=10)
    assert (refused["code"], refused["id"]) == ("rate_limited", "r8") and refused["retry_after"] > 0
    stored = await database_sync_to_async(Rating.objects.get)()
    assert stored.score == 1  # the 7th, the last one let through
    await socket.disconnect()


# --- the agent's desk ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_desk_shows_each_rating_beside_the_rated_answer_and_the_conversations_own(
    conversation: Conversation, frames: list[dict[str, Any]], agent: User
) -> None:
    post_as_server(conversation.id, "m1", ROUTINE)
    actions.rate(conversation.id, "r1", "m1", -1, "The <b>link</b> is dead")
    actions.post_agent_reply(conversation.id, agent, "Here is a working link.")
    actions.close(conversation.id, agent)
    actions.rate(conversation.id, "r2", None, 1, "Thanks, Alex!")
    client = Client()
    client.force_login(agent)
    page = client.get(f"/review/{conversation.id}/?partial=live").content.decode()
    answer = page.index("Forgot password and enter your email")  # the small model's answer
    rated = page.index('data-rating="-1"')
    assert answer < rated < page.index("Here is a working link.")
    assert "👎" in page and "The &lt;b&gt;link&lt;/b&gt; is dead" in page
    assert 'data-conversation-rating="1"' in page and "Thanks, Alex!" in page
    # One rating on the page per answer rated, and the conversation's once.
    assert page.count("data-rating=") == 1
