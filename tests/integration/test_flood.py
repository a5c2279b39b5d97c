"""Flood control over the real socket and Redis: a burst from one socket, too many connections or new
conversations from one address, each refused with `rate_limited` and a `retry_after`, nothing lost."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.integration.conftest import ChatClient, Stack, new_address
from tests.integration.test_chat_flow import HARD, ROUTINE, is_type

pytestmark = pytest.mark.integration

# The defaults (support/settings.py): 8 messages per 10 seconds a socket, 5 large-model jobs a
# conversation, 20 connections and 20 new conversations an address.
SOCKET_MESSAGES = 8
CONVERSATION_ESCALATIONS = 5
ADDRESS_CONNECTIONS = 20


def refused(stack: Stack, address: str, token: str | None = None) -> dict[str, object] | None:
    """Open a socket from `address`: the rate_limited frame if it was refused, else None (and close it)."""
    url = stack.ws + (f"?token={token}" if token else "")
    with connect(url, origin=Origin(stack.http), additional_headers={"X-Forwarded-For": address}) as socket:
        first = json.loads(socket.recv(timeout=10))
        if first["type"] == "session":
            return None
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        return dict(first)


def test_a_burst_of_120_messages_is_rate_limited_and_starts_at_most_five_large_model_jobs(
    stack: Stack, visitor: ChatClient
) -> None:
    for number in range(120):
        visitor.ask(f"burst-{number}", f"{HARD} ({number})")
    limited: list[dict[str, Any]] = []
    acked: list[str] = []
    escalations: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(limited) + len(acked) < 120 and time.monotonic() < deadline:
        frame = visitor.next_frame()
        if frame["type"] == "error":
            limited.append(frame)
        elif frame["type"] == "ack":
            acked.append(frame["id"])
        elif frame["type"] == "escalated":
            escalations.append(frame)
    assert len(acked) == SOCKET_MESSAGES
    assert len(limited) == 120 - SOCKET_MESSAGES
    assert all(f["code"] == "rate_limited" and int(f["retry_after"]) >= 1 and f["message"] for f in limited)
    assert {f["id"] for f in limited} == {f"burst-{n}" for n in range(120)} - set(acked)
    # Escalations arrive with their acks; the last acked message's may still be on its way.
    visitor.drain(2)
    escalations += [f for f in visitor.frames if f["type"] == "escalated" and f not in escalations]
    large = [f for f in escalations if f["destination"] == "large"]
    assert len(large) == CONVERSATION_ESCALATIONS
    over = [f for f in escalations if f["reason"] == "escalation_limit"]
    assert len(over) == 1 and over[0]["destination"] == "people" and "team" in over[0]["text"]


def test_a_rate_limited_message_sent_again_after_retry_after_is_accepted(visitor: ChatClient) -> None:
    for number in range(SOCKET_MESSAGES):
        visitor.ask(f"r{number}", ROUTINE)
    for number in range(SOCKET_MESSAGES):
        visitor.wait_for(is_type("answer", reply_to=f"r{number}"))
    visitor.ask("late", ROUTINE)
    limited = visitor.wait_for(is_type("error", id="late"))
    assert limited["code"] == "rate_limited" and 1 <= limited["retry_after"] <= 10
    time.sleep(limited["retry_after"])
    visitor.ask("late", ROUTINE)
    assert visitor.wait_for(is_type("ack", id="late"))["text"] == ROUTINE
    visitor.wait_for(is_type("answer", reply_to="late"))


def test_one_address_may_hold_only_so_many_connections_and_a_closed_one_frees_its_place(stack: Stack) -> None:
    address = new_address()
    clients = [ChatClient(stack, address=address) for _ in range(ADDRESS_CONNECTIONS)]
    frame = refused(stack, address)
    assert frame is not None and frame["code"] == "rate_limited" and int(str(frame["retry_after"])) >= 1
    # Another address is not affected.
    assert refused(stack, new_address()) is None
    # A connection closed frees its place: its customer comes back to the same conversation.
    token = clients[0].token
    clients[0].close()
    time.sleep(0.5)
    again = ChatClient(stack, token=token, address=address)
    assert again.session["conversation"] == clients[0].session["conversation"]
    for client in [again, *clients[1:]]:
        client.close()


def test_one_address_may_start_only_so_many_conversations_but_may_always_resume_one(stack: Stack) -> None:
    address = new_address()
    tokens = []
    for _ in range(20):
        client = ChatClient(stack, address=address)
        tokens.append(client.token)
        client.close()
    frame = refused(stack, address)
    assert frame is not None and frame["code"] == "rate_limited" and int(str(frame["retry_after"])) > 60
    # Resuming a conversation is not starting one.
    assert refused(stack, address, token=tokens[0]) is None


def test_a_socket_that_ignores_retry_after_is_closed_and_its_address_refused_for_a_while(stack: Stack) -> None:
    from websockets.exceptions import InvalidStatus

    from support.conversations.flood import STRIKES

    script = ChatClient(stack)
    # The same script's second socket, quiet so far.
    accomplice = ChatClient(stack, address=script.address)
    burst = SOCKET_MESSAGES + STRIKES + 20
    for number in range(burst):
        try:
            script.ask(f"spam-{number}", "hello")
        except ConnectionClosed:
            break
    limited = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frame = script.next_frame()
            limited += frame["type"] == "error" and frame["code"] == "rate_limited"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert limited == STRIKES
    # Its other socket is closed at its next frame, and the address cannot come straight back: its
    # handshake is refused.
    accomplice.ask("quiet-1", ROUTINE)
    with pytest.raises(ConnectionClosed) as also_closed:
        while True:
            accomplice.next_frame()
    assert also_closed.value.rcvd is not None and also_closed.value.rcvd.code == 1008
    assert not any(frame.get("id") == "quiet-1" for frame in accomplice.frames)
    with pytest.raises(InvalidStatus) as refused_handshake:
        ChatClient(stack, address=script.address)
    assert refused_handshake.value.response.status_code == 403
    # Everyone else is served as before.
    other = ChatClient(stack)
    try:
        other.ask("o1", ROUTINE)
        other.wait_for(is_type("answer", reply_to="o1"))
    finally:
        other.close()
