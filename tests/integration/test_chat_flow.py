"""The whole chat path through real processes: WebSocket → server → Redis → Celery worker → large model."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.integration.conftest import WIDGET_ORIGIN, ChatClient, Stack, csrf_of

pytestmark = pytest.mark.integration

ROUTINE = "How do I reset my password?"
HARD = "Can I return a sofa I bought 40 days ago that my cat scratched?"


def is_type(kind: str, **fields: object):  # type: ignore[no-untyped-def]
    return lambda frame: frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())


def test_a_routine_question_is_answered_at_once_by_the_small_model(visitor: ChatClient) -> None:
    visitor.ask("m1", ROUTINE)
    ack = visitor.next_frame()
    answer = visitor.next_frame()
    assert ack == {"type": "ack", "id": "m1", "seq": 1, "text": ROUTINE}
    assert answer["type"] == "answer" and answer["seq"] == 2 and answer["reply_to"] == "m1"
    assert answer["tier"] == "small" and answer["intent"] == "reset-password"
    assert answer["confidence"] >= 0.5
    assert "password" in answer["text"].lower()


def test_a_hard_question_is_escalated_and_the_large_model_streams_its_answer(stack: Stack, visitor: ChatClient) -> None:
    visitor.ask("hard-1", HARD)
    assert visitor.next_frame()["type"] == "ack"
    escalated = visitor.next_frame()
    assert escalated["type"] == "escalated" and escalated["reply_to"] == "hard-1"
    assert escalated["reason"] in {"low_confidence", "out_of_scope"}
    # The first request also loads the model into the worker.
    answer = visitor.wait_for(is_type("answer", reply_to="hard-1"), timeout=240)
    tokens = [f["text"] for f in visitor.frames if f["type"] == "token" and f["reply_to"] == "hard-1"]
    assert len(tokens) >= 2, "the answer was not streamed"
    assert "".join(tokens) == answer["text"]
    assert answer["tier"] == "large" and answer["seq"] == 3
    assert answer["intent"] is None and answer["confidence"] is None

    stats = stack.stats()
    assert stats["answered"]["large"] >= 1
    assert stats["cost_usd"]["large"] > 0
    assert stats["escalations_by_reason"][escalated["reason"]] >= 1


def test_an_agent_reply_reaches_the_customer_live(stack: Stack, visitor: ChatClient, agent_http: httpx.Client) -> None:
    visitor.ask("h1", "I want to talk to a real person please")
    visitor.next_frame()
    escalated = visitor.next_frame()
    assert escalated["reason"] == "human_requested" and escalated["destination"] == "people"
    assert (escalated["seq"], escalated["reply_to"]) == (2, "h1") and "member of our team" in escalated["text"]

    conversation = visitor.session["conversation"]
    queue = agent_http.get("/review/")
    assert queue.status_code == 200 and conversation in queue.text
    page = agent_http.get(f"/review/{conversation}/")
    assert "I want to talk to a real person please" in page.text
    response = agent_http.post(
        f"/review/{conversation}/reply/",
        data={"text": "Hi, Alex here. How can I help?", "csrfmiddlewaretoken": csrf_of(page.text)},
    )
    assert response.status_code == 302

    answer = visitor.wait_for(is_type("answer", tier="agent"), timeout=30)
    assert answer["text"] == "Hi, Alex here. How can I help?"
    assert answer["reply_to"] == "h1" and answer["agent"] == "Alex"

    # The agent owns the conversation now: the bot stays quiet, the message waits for the agent.
    visitor.ask("h2", ROUTINE)
    assert visitor.next_frame()["type"] == "ack"
    assert [f for f in visitor.drain(2) if f["type"] == "answer"] == []


def test_a_reconnecting_client_gets_what_it_missed_once(stack: Stack, visitor: ChatClient) -> None:
    visitor.ask("r1", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="r1"))
    visitor.close()

    # While this customer is away, nothing is lost; on return with after=2 only newer events come back.
    again = ChatClient(stack, token=visitor.token, after=2)
    assert again.session["conversation"] == visitor.session["conversation"]
    again.ask("r2", "How do I get a VAT invoice?")
    seqs = [again.next_frame()["seq"], again.next_frame()["seq"]]
    assert seqs == [3, 4]
    again.close()

    replay = ChatClient(stack, token=visitor.token, after=1)
    frames = replay.drain(1.5)
    assert [f["seq"] for f in frames] == [2, 3, 4]
    assert [f["type"] for f in frames] == ["answer", "ack", "answer"]
    replay.close()


def test_two_tabs_of_one_conversation_each_see_every_event_once(stack: Stack, visitor: ChatClient) -> None:
    # The tab that asks gets its events straight from the server; the other through Redis.
    other_tab = ChatClient(stack, token=visitor.token, after=0)
    visitor.ask("t1", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="t1"))
    other_tab.ask("t2", "How do I get a VAT invoice?")
    other_tab.wait_for(is_type("answer", reply_to="t2"))
    mine = visitor.frames[1:] + visitor.drain(1.5)
    theirs = other_tab.frames[1:] + other_tab.drain(1.5)
    assert [f["seq"] for f in mine] == [f["seq"] for f in theirs] == [1, 2, 3, 4]
    assert [f["type"] for f in theirs] == ["ack", "answer", "ack", "answer"]
    other_tab.close()


def test_a_repeated_client_id_is_acknowledged_again_and_processed_once(stack: Stack, visitor: ChatClient) -> None:
    visitor.ask("dup", ROUTINE)
    first_ack = visitor.next_frame()
    visitor.wait_for(is_type("answer", reply_to="dup"))
    visitor.ask("dup", ROUTINE)
    assert visitor.next_frame() == first_ack
    assert visitor.drain(1.5) == []

    replay = ChatClient(stack, token=visitor.token, after=0)
    frames = replay.drain(1.5)
    assert [f["type"] for f in frames] == ["ack", "answer"]
    replay.close()


@pytest.mark.parametrize(
    ("raw", "code", "client_id"),
    [
        ("this is not json", "invalid_json", None),
        (json.dumps([1, 2]), "invalid_frame", None),
        (json.dumps({"type": "typing", "id": "x1"}), "unknown_type", "x1"),
        (json.dumps({"id": "x2", "text": "hi"}), "missing_field", "x2"),
        (json.dumps({"type": "message", "text": "hi"}), "missing_field", None),
        (json.dumps({"type": "message", "id": "x3"}), "missing_field", "x3"),
        (json.dumps({"type": "message", "id": "x4", "text": "   "}), "empty_text", "x4"),
        (json.dumps({"type": "message", "id": "x5", "text": "a" * 2001}), "text_too_long", "x5"),
        (json.dumps({"type": "message", "id": "x6", "text": 42}), "invalid_text", "x6"),
    ],
)
def test_a_bad_frame_gets_a_clear_error_and_the_connection_stays_open(
    visitor: ChatClient, raw: str, code: str, client_id: str | None
) -> None:
    visitor.send(raw)
    error = visitor.next_frame()
    assert error["type"] == "error" and error["code"] == code and error["id"] == client_id
    assert error["message"]
    visitor.ask("ok", ROUTINE)
    assert visitor.next_frame() == {"type": "ack", "id": "ok", "seq": 1, "text": ROUTINE}


def test_an_unknown_token_starts_a_new_conversation(stack: Stack) -> None:
    client = ChatClient(stack, token="forged-token", after=5)
    assert client.token != "forged-token"
    client.ask("n1", ROUTINE)
    assert client.next_frame()["seq"] == 1
    client.close()


def test_a_page_from_another_origin_cannot_open_the_chat_socket(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.ws, origin=Origin("http://evil.example"))
    assert refused.value.response.status_code == 403


def test_two_visitors_never_see_each_others_events(visitor: ChatClient, other_visitor: ChatClient) -> None:
    visitor.ask("a1", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="a1"))
    assert other_visitor.drain(1) == []


def test_agents_pages_hear_about_new_escalations(stack: Stack, visitor: ChatClient, agent_http: httpx.Client) -> None:
    cookie = f"sessionid={agent_http.cookies['sessionid']}"
    with connect(
        stack.http.replace("http://", "ws://") + "/ws/staff/",
        origin=Origin(stack.http),
        additional_headers={"Cookie": cookie},
    ) as staff:
        visitor.ask("s1", "can I speak to a human please")
        changes: list[dict[str, str]] = []
        while not any(change["conversation"] != "presence" for change in changes):
            batch = json.loads(staff.recv(timeout=15))
            assert batch["type"] == "changes"
            changes += batch["changes"]
    # Besides the page's own agent coming online, the escalation, once.
    expected = [{"conversation": visitor.session["conversation"], "change": "escalated"}]
    assert [change for change in changes if change["conversation"] != "presence"] == expected


def test_a_website_allowed_to_embed_the_chat_may_open_the_chat_socket_but_never_the_staff_socket(
    stack: Stack, agent_http: httpx.Client
) -> None:
    with connect(stack.ws, origin=Origin(WIDGET_ORIGIN)) as chat:
        assert json.loads(chat.recv(timeout=10))["type"] == "session"
    cookie = f"sessionid={agent_http.cookies['sessionid']}"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            stack.http.replace("http://", "ws://") + "/ws/staff/",
            origin=Origin(WIDGET_ORIGIN),
            additional_headers={"Cookie": cookie},
        )
    assert refused.value.response.status_code == 403


def test_the_staff_socket_refuses_customers(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.http.replace("http://", "ws://") + "/ws/staff/", origin=Origin(stack.http))
    assert refused.value.response.status_code == 403


def test_the_token_travels_as_a_subprotocol_and_the_old_query_parameter_still_works(
    stack: Stack, visitor: ChatClient
) -> None:
    assert visitor.socket.subprotocol == "tandem.v1"
    visitor.ask("t1", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="t1"))
    again = ChatClient(stack, token=visitor.token, after=2)
    assert again.session["conversation"] == visitor.session["conversation"]
    again.close()
    deprecated = ChatClient(stack, token=visitor.token, after=2, token_in_url=True)
    assert deprecated.session["conversation"] == visitor.session["conversation"]
    deprecated.close()
