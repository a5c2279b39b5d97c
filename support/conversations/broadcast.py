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

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)
_loop: asyncio.AbstractEventLoop | None = None
_queue: asyncio.Queue[Coroutine[Any, Any, None]] | None = None
_loop_lock = threading.Lock()
SEND_TIMEOUT_SECONDS = 10


def group_name(conversation_id: uuid.UUID | str) -> str:
    return f"chat.{uuid.UUID(str(conversation_id)).hex}"


def _background_loop() -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Coroutine[Any, Any, None]]]:
    global _loop, _queue
    with _loop_lock:
        if _loop is None or _loop.is_closed() or _queue is None:
            loop = asyncio.new_event_loop()
            queue: asyncio.Queue[Coroutine[Any, Any, None]] = asyncio.Queue()
            threading.Thread(target=loop.run_forever, name="channel-layer-sender", daemon=True).start()
            asyncio.run_coroutine_threadsafe(_send_in_order(queue), loop)
            _loop, _queue = loop, queue
        return _loop, _queue


async def _send_in_order(queue: asyncio.Queue[Coroutine[Any, Any, None]]) -> None:
    # One send at a time, in the order they were committed: a socket then sees seq n before n + 1.
    while True:
        send = await queue.get()
        try:
            await asyncio.wait_for(send, SEND_TIMEOUT_SECONDS)
        except Exception:
            logger.exception("Could not broadcast through the channel layer")
        finally:
            queue.task_done()


def _submit(send: Coroutine[Any, Any, None]) -> None:
    """Queue a send and return at once: the caller (often the thread that holds the database) does not
    wait for Redis. A send that fails is logged; stored events are replayed when a socket notices a gap
    or reconnects, so nothing is lost."""
    loop, queue = _background_loop()
    loop.call_soon_threadsafe(queue.put_nowait, send)


def flush(timeout: float = SEND_TIMEOUT_SECONDS) -> None:
    """Wait until every queued send has gone out (for tests and orderly shutdowns)."""
    loop, queue = _background_loop()
    asyncio.run_coroutine_threadsafe(queue.join(), loop).result(timeout=timeout)


def send_to_conversation(conversation_id: uuid.UUID | str, *frames: dict[str, Any], skip: str | None = None) -> None:
    """Deliver frames, in order, to every socket of the conversation but `skip` (a channel that has them)."""
    layer = get_channel_layer()
    if layer is None or not frames:
        return
    messages = [{"type": "chat.frame", "frame": frame} for frame in frames]
    group = group_name(conversation_id)
    _submit(_group_send_except(layer, group, messages, skip) if skip else _group_send(layer, group, messages))


async def _group_send(layer: Any, group: str, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        await layer.group_send(group, message)


async def _group_send_except(layer: Any, group: str, messages: list[dict[str, Any]], skip: str) -> None:
    # Most chats have one socket, the one that posted: a group send would carry every event back to
    # it through Redis only to be dropped there (about a quarter of the
    # event loop's time per message, measured with py-spy).
    # Redis layers list the members once for all the frames and send to the others; other layers fall
    # back to the group send, naming the socket that has them, which drops its copies (ChatConsumer).
    if not isinstance(layer, RedisChannelLayer):
        await _group_send(layer, group, [{**message, "skip": skip} for message in messages])
        return
    # channels_redis keeps a group as a sorted set of channel names (RedisChannelLayer.group_send reads
    # it the same way).
    connection = layer.connection(layer.consistent_hash(group))
    members = [member.decode("utf8") for member in await connection.zrange(layer._group_key(group), 0, -1)]
    for channel in members:
        if channel == skip:
            continue
        for message in messages:
            try:
                await layer.send(channel, message)
            except ChannelFull:
                # That socket is not reading; it fills the gap from the database when it next hears something.
                logger.warning("Channel %s is full; it will catch up from the database", channel)
                break


def send_to_staff(message: dict[str, Any]) -> None:
    """Tell open agent pages that the review queue changed."""
    layer = get_channel_layer()
    if layer is None:
        return
    _submit(layer.group_send("staff", {"type": "queue.changed", **message}))


def close_conversation(conversation_id: uuid.UUID | str) -> None:
    """The conversation was erased: its open sockets say so and close (the widget then starts afresh)."""
    layer = get_channel_layer()
    if layer is None:
        return
    _submit(layer.group_send(group_name(conversation_id), {"type": "chat.erased"}))
