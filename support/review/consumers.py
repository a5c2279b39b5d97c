"""Agents' pages listen here for queue changes, so an escalation shows up without a refresh."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from support.permissions import is_agent


class StaffConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if not is_agent(user):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add("staff", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard("staff", self.channel_name)

    async def queue_changed(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"conversation": event["conversation"], "change": event["change"]}))
