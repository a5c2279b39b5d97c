"""Bad input never hurts anyone else: every malformed frame gets an error frame, to its sender only,
whose socket stays open, while other customers are answered as usual."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import ChatClient, Stack
from tests.integration.test_chat_flow import ROUTINE, is_type
from tests.malformed import MALFORMED

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("kind", "raw", "code"), MALFORMED, ids=[kind for kind, _, _ in MALFORMED])
def test_a_malformed_frame_gets_its_error_and_the_socket_stays_open(
    visitor: ChatClient, kind: str, raw: str | bytes, code: str
) -> None:
    visitor.send(raw)
    error = visitor.next_frame()
    assert error["type"] == "error" and error["code"] == code, (kind, error)
    assert error["message"]
    visitor.ask("after", ROUTINE)
    assert visitor.next_frame() == {"type": "ack", "id": "after", "seq": 1, "text": ROUTINE}
    visitor.wait_for(is_type("answer", reply_to="after"))


def test_a_flood_of_every_kind_of_malformed_frame_drops_no_socket_and_other_customers_are_answered(
    stack: Stack, visitor: ChatClient, other_visitor: ChatClient
) -> None:
    rounds = 15
    asked = []
    for number in range(rounds):
        for _, raw, _ in MALFORMED:
            visitor.send(raw)
        # Another customer asks at the same moment (within flood control's 8 messages in 10 seconds):
        # their questions share the server, and the small model's micro-batches, with the flood.
        if number % 2 == 0:
            other_visitor.ask(f"q{number}", ROUTINE)
            asked.append(f"q{number}")
    # Malformed frames are refused for what they are, never as rate_limited, however many there are.
    errors = [visitor.next_frame() for _ in range(rounds * len(MALFORMED))]
    assert [error["code"] for error in errors] == [code for _, _, code in MALFORMED] * rounds
    for client_id in asked:
        other_visitor.wait_for(is_type("answer", reply_to=client_id))
    # Nobody else heard about the bad frames, and both sockets are still open. The flood counted
    # against the sender's own rate: its next message waits out flood control, then is answered.
    assert not [frame for frame in other_visitor.frames if frame["type"] == "error"]
    visitor.ask("still-here", ROUTINE)
    limited = visitor.wait_for(is_type("error", id="still-here"))
    assert limited["code"] == "rate_limited"
    time.sleep(limited["retry_after"])
    visitor.ask("still-here", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="still-here"))


def test_only_a_frame_over_the_transport_limit_closes_the_socket(stack: Stack) -> None:
    client = ChatClient(stack)
    with pytest.raises(ConnectionClosed) as closed:
        # The server may close while the frame is still being sent, or just after.
        client.send(json.dumps({"type": "message", "id": "big", "text": "a" * (2 * 1024 * 1024)}))
        client.next_frame()
    # Close code 1009 (message too big), unless the server's close beat the end of the upload and the
    # client saw the connection drop before reading it.
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    client.close()
