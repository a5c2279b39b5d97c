"""Agents' pages listen here for queue changes, so an escalation shows up without a reload.

Changes are batched: a page gets at most one frame per BATCH_SECONDS, naming every conversation that
changed since the last one, however many events there were (a flood of escalations would otherwise send
each open page a frame, and a refresh, per event).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from support.permissions import is_agent

BATCH_SECONDS = 1.0
# A batch naming more conversations than this says "many" instead: the page refreshes all the same.
BATCH_LIMIT = 200


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
        await self.channel_layer.group_add("staff", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        flush = getattr(self, "flush_task", None)
        if flush is not None:
            flush.cancel()
        await self.channel_layer.group_discard("staff", self.channel_name)

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
