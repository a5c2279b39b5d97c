"""Privacy through the real processes: no message text or conversation token in the server's or the
worker's logs, and an erased conversation's open socket is told and closed."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import ChatClient, Stack
from tests.integration.test_chat_flow import HARD, ROUTINE, is_type

pytestmark = pytest.mark.integration


def test_no_customer_text_or_token_reaches_the_server_or_worker_logs(stack: Stack, visitor: ChatClient) -> None:
    marker = f"zebra{uuid.uuid4().hex[:8]}"
    visitor.ask("p1", f"{ROUTINE} {marker}")
    visitor.wait_for(is_type("answer", reply_to="p1"))
    visitor.ask("p2", f"{HARD} {marker}")
    visitor.wait_for(is_type("answer", reply_to="p2"), timeout=240)
    visitor.send(json.dumps({"type": "message", "id": "p3", "text": f"{marker}\x00"}))
    visitor.wait_for(is_type("error", id="p3"))
    # Nor the customer's conversation token, which no longer travels in the URL.
    resumed = ChatClient(stack, token=visitor.token, after=100)
    resumed.close()
    for process in ("server", "worker"):
        assert marker not in stack.log(process), process
        assert visitor.token not in stack.log(process) and resumed.token not in stack.log(process), process


def test_erasing_a_conversation_closes_its_open_socket(stack: Stack, visitor: ChatClient) -> None:
    visitor.ask("e1", ROUTINE)
    visitor.wait_for(is_type("answer", reply_to="e1"))
    stack.manage("erase_conversations", str(visitor.session["conversation"]), "--yes")
    erased = visitor.wait_for(is_type("error"))
    assert erased["code"] == "conversation_erased"
    with pytest.raises(ConnectionClosed):
        visitor.next_frame()
    # The same browser comes back to a new, empty conversation.
    again = ChatClient(stack, token=visitor.token, address=visitor.address)
    assert again.session["conversation"] != visitor.session["conversation"]
    assert again.drain(1) == []
    again.close()
