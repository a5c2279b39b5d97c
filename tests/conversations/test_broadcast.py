"""Sending to sockets from sync code: queued, in commit order, never blocking the caller."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from support.conversations import broadcast


class SlowLayer:
    """Records group sends; each takes a while, and one kind fails."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        if message.get("frame", {}).get("type") == "boom":
            raise ConnectionError("redis went away")
        self.sent.append((group, message))


def test_sends_go_out_in_order_without_making_the_caller_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    layer = SlowLayer()
    monkeypatch.setattr(broadcast, "get_channel_layer", lambda: layer)
    conversation = "0f8fad5b-d9cb-469f-a165-70867728950e"
    started = time.perf_counter()
    with caplog.at_level(logging.ERROR):
        for seq in range(1, 21):
            broadcast.send_to_conversation(conversation, {"type": "boom" if seq == 5 else "token", "seq": seq})
        broadcast.send_to_staff({"change": "escalated"})
        queued = time.perf_counter() - started
        broadcast.flush()
    # Twenty-one sends of 10 ms each: waiting for them would have taken 0.21 s.
    assert queued < 0.1
    assert [message["frame"]["seq"] for _, message in layer.sent if "frame" in message] == [
        seq for seq in range(1, 21) if seq != 5
    ]
    assert layer.sent[0][0] == broadcast.group_name(conversation) and layer.sent[-1][0] == "staff"
    # The failed send is reported and does not stop the ones after it.
    assert "Could not broadcast" in caplog.text
