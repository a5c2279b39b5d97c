"""Agents' pages listen here for queue changes, so an escalation shows up without a reload; an open
socket is also the agent's presence (shown as online while its page pings).

Changes are batched: a page gets at most one frame per BATCH_SECONDS, naming every conversation that
changed since the last one, however many events there were (a flood of escalations would otherwise send
each open page a frame, and a refresh, per event).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from support.conversations import broadcast
from support.conversations.protocol import typing_frame
from support.permissions import is_agent
from support.review import actions as review_actions

BATCH_SECONDS = 1.0
# A batch naming more conversations than this says "many" instead: the page refreshes all the same.
BATCH_LIMIT = 200
# A page pings every 30 s; more often than this is not counted again.
PING_SECONDS = 20.0
# At most one typing notice per page this often (the widget shows one for 5 s).
TYPING_SECONDS = 2.0


class StaffConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        # The role is a group membership: a database read.
        if not await database_sync_to_async(is_agent)(user):
            await self.close(code=4403)
            return
        self.changes: dict[str, str] = {}
        self.overflow = False
        self.flush_task: asyncio.Task[None] | None = None
        self.user = user
        self.last_ping = asyncio.get_running_loop().time()
        self.last_typing = 0.0
        await self.channel_layer.group_add("staff", self.channel_name)
        await self.accept()
        await database_sync_to_async(review_actions.agent_online)(user, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # A page sends {"type":"ping"} (keeps the agent shown as online) and, while the agent types a
        # reply, {"type":"typing","conversation":"<id>"} (the customer sees "… is typing").
        if not hasattr(self, "user") or text_data is None or len(text_data) > 200:
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        now = asyncio.get_running_loop().time()
        if frame.get("type") == "ping" and now - self.last_ping >= PING_SECONDS:
            self.last_ping = now
            await database_sync_to_async(review_actions.agent_online)(self.user, self.channel_name)
        elif frame.get("type") == "typing" and now - self.last_typing >= TYPING_SECONDS:
            self.last_typing = now
            try:
                conversation = uuid.UUID(str(frame.get("conversation")))
            except ValueError:
                return
            name = await database_sync_to_async(review_actions.typing_name)(conversation, self.user)
            if name is not None:
                await self.channel_layer.group_send(
                    broadcast.group_name(conversation), {"type": "chat.frame", "frame": typing_frame(name)}
                )

    async def disconnect(self, code: int) -> None:
        flush = getattr(self, "flush_task", None)
        if flush is not None:
            flush.cancel()
        await self.channel_layer.group_discard("staff", self.channel_name)
        if hasattr(self, "user"):
            await database_sync_to_async(review_actions.agent_offline)(self.channel_name)

    async def queue_changed(self, event: dict[str, Any]) -> None:
        conversation = str(event["conversation"])
        if len(self.changes) < BATCH_LIMIT or conversation in self.changes:
            # The latest change of each conversation is the one that matters to the page.
            self.changes.pop(conversation, None)
            self.changes[conversation] = str(event["change"])
        else:
            self.overflow = True
        if self.flush_task is None:
            self.flush_task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(BATCH_SECONDS)
        changes, overflow = self.changes, self.overflow
        self.changes, self.overflow, self.flush_task = {}, False, None
        frame: dict[str, Any] = {
            "type": "changes",
            "changes": [{"conversation": key, "change": value} for key, value in changes.items()],
        }
        if overflow:
            frame["many"] = True
        await self.send(text_data=json.dumps(frame))
