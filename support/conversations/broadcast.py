"""Sending frames to a conversation's sockets through the channel layer, from synchronous code.

Web threads and Celery workers both send from sync code. Rather than a fresh event loop per send
(`async_to_sync` in a worker creates and closes one each time, and the Redis pools tied to it go with
it), every send goes through one long-lived loop in a daemon thread, so connections are reused.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
SEND_TIMEOUT_SECONDS = 10


def group_name(conversation_id: uuid.UUID | str) -> str:
    return f"chat.{uuid.UUID(str(conversation_id)).hex}"


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True).start()
            _loop = loop
        return _loop


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    future = asyncio.run_coroutine_threadsafe(coroutine, _background_loop())
    future.result(timeout=SEND_TIMEOUT_SECONDS)


def send_to_conversation(conversation_id: uuid.UUID | str, frame: dict[str, Any]) -> None:
    """Deliver a frame to every socket of the conversation. A failure is logged, not raised: stored
    events are replayed on reconnect, and a lost token frame is superseded by the final answer."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _run(layer.group_send(group_name(conversation_id), {"type": "chat.frame", "frame": frame}))
    except Exception:
        logger.exception("Could not broadcast a %s frame to conversation %s", frame.get("type"), conversation_id)


def send_to_staff(message: dict[str, Any]) -> None:
    """Tell open agent pages that the review queue changed."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        _run(layer.group_send("staff", {"type": "queue.changed", **message}))
    except Exception:
        logger.exception("Could not notify staff of a queue change")
