"""The customer's chat socket: parse frames, call actions, forward events. No business logic here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chatbot.policy import Thresholds
from chatbot.routes import Destination
from chatbot.routing import Incoming, Routed, unavailable
from chatbot.small import batching
from chatbot.small.model import ModelNotTrained
from support.conversations import actions, broadcast, flood
from support.conversations.protocol import (
    SERVER_ERROR,
    SUBPROTOCOL,
    CustomerMessage,
    CustomerRating,
    FrameError,
    error_frame,
    parse_after,
    parse_client_frame,
    rate_limited_frame,
    session_frame,
    token_from_subprotocols,
)

# WebSocket close codes: "try again later", and a normal close.
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008
NORMAL_CLOSURE = 1000
# Sent before closing the sockets of a conversation that was just erased (manage.py erase_conversations).
CONVERSATION_ERASED = "conversation_erased"

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):
    conversation_id: uuid.UUID
    group: str
    # The client's address, as flood control counts it ("" once it no longer counts).
    address: str
    # The highest event seq this socket has sent: the group may deliver an event the replay already sent.
    last_seq: int
    # This socket's own message rate (TANDEM_LIMIT_SOCKET_MESSAGES), and its messages refused in a row.
    rate: flood.SocketRate
    # The server closed this socket: nothing more is sent on it (events may still arrive for it).
    closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections before every handler, through the one thread that runs all
        # sync code: a thread hop per frame and per group message, queued behind the database work.
        # Every database call here goes through database_sync_to_async, which does the same check
        # itself, so the extra one is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        offered = self.scope.get("subprotocols") or []
        # The token travels in the Sec-WebSocket-Protocol header, which no access log writes; the
        # ?token= query parameter still works (deprecated: URLs end up in logs).
        token = token_from_subprotocols(offered) or (query.get("token") or [None])[-1]
        self.subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        after = parse_after((query.get("after") or [None])[-1])
        self.address = flood.client_address(self.scope)
        if await flood.address_blocked(self.address):
            # A script that ignored retry_after: its handshake is refused (HTTP 403), the cheapest answer.
            self.address = ""
            await asyncio.sleep(flood.REFUSAL_DELAY_SECONDS)
            await self.close(code=TRY_AGAIN_LATER)
            return
        self.rate = flood.SocketRate()
        waited = await flood.connection_opened(self.channel_name, self.address)
        if waited is None and (not token or actions.conversation_for_token(token) is None):
            waited = await flood.conversation_allowed(self.address)
            if waited is not None:
                await flood.connection_closed(self.channel_name, self.address)
        if waited is not None:
            # Told why, then closed with "try again later"; the widget reconnects after retry_after.
            self.address = ""
            await asyncio.sleep(flood.REFUSAL_DELAY_SECONDS)
            await self.accept(subprotocol=self.subprotocol)
            await self._send(rate_limited_frame(waited))
            await self.close(code=TRY_AGAIN_LATER)
            return
        session = await database_sync_to_async(actions.open_session)(token)
        self.conversation_id = session.conversation_id
        self.group = broadcast.group_name(session.conversation_id)
        # Join before reading the backlog: an event committed in between arrives through the group,
        # and the seq check drops the copies.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=self.subprotocol)
        await self._send(session_frame(str(session.conversation_id), session.token))
        self.last_seq = after if session.resumed else 0
        await self._send_backlog()
        if session.resumed and after == 0:
            # A fresh page replays the whole conversation: it also shows which answers were rated.
            for frame in await database_sync_to_async(actions.ratings_of)(self.conversation_id):
                await self._send(frame)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "address", ""):
            await flood.connection_closed(self.channel_name, self.address)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "conversation_id") or self.closing:
            return  # a refused or closing connection: nothing of it is handled
        # The small tier's answer time counts from here (Message.latency_ms): what the customer waits.
        received_at = time.monotonic()
        if flood.blocked_here(self.address):
            # Another socket of this address was closed for ignoring retry_after: so is this one.
            await self._close(POLICY_VIOLATION)
            return
        # Every frame counts against the rates, malformed ones and ratings too.
        waited = await flood.message_allowed(self.rate, self.address)
        await flood.connection_used(self.channel_name, self.address)
        try:
            frame = parse_client_frame(text_data)
        except FrameError as error:
            await self._send(error_frame(error.code, error.message, error.client_id))
            return
        if waited is not None:
            # Not stored: the client sends it again after `retry_after` seconds (same id, so it counts once).
            if self.rate.ignores_retry_after():
                logger.warning("Closed a chat socket that ignored retry_after %s times", flood.STRIKES)
                await flood.block_address(self.address)
                await self._close(POLICY_VIOLATION)
                return
            await self._send(rate_limited_frame(waited, frame.client_id))
            return
        self.rate.accepted()
        try:
            async with flood.turn(self.address):
                if isinstance(frame, CustomerRating):
                    await self._receive_rating(frame)
                else:
                    await self._receive_message(frame, received_at)
        except Exception:
            # Whatever went wrong, this socket stays open and the customer hears about it; the message
            # is stored at most once (its id makes a retry idempotent), so sending it again is safe.
            logger.exception("A customer message failed in conversation %s", self.conversation_id)
            await self._send(error_frame(SERVER_ERROR, "Something went wrong; please send it again.", frame.client_id))

    async def _receive_message(self, message: CustomerMessage, received_at: float) -> None:
        context = await database_sync_to_async(actions.routing_context)(self.conversation_id)
        # Classified only while the bot answers this conversation (people answer it otherwise).
        routed = await self._route(message.text, context.language) if context.bot_answers else None
        posted = await self._post(message, routed, received_at)
        if posted.needs_routing:
            # An agent handed the conversation back in between: the bot answers after all.
            routed = await self._route(message.text, context.language)
            posted = await self._post(message, routed, received_at)
        if posted.duplicate:
            # Only this socket asked again; the stored ack is not a new event for the others.
            await self._send(posted.ack)
        # The customer waits for these, so this socket sends them itself; the channel layer takes them to
        # the conversation's other sockets (other tabs) only.
        for frame in posted.events:
            await self._deliver(frame)

    async def _post(self, message: CustomerMessage, routed: Routed | None, received_at: float) -> actions.Posted:
        post = database_sync_to_async(actions.post_customer_message)
        large_allowed = await self._may_ask(routed)
        return await post(
            self.conversation_id, message.client_id, message.text, routed, self.channel_name, large_allowed, received_at
        )

    async def _receive_rating(self, rating: CustomerRating) -> None:
        rate = database_sync_to_async(actions.rate)
        try:
            rated = await rate(
                self.conversation_id, rating.client_id, rating.reply_to, rating.score, rating.comment, self.channel_name
            )
        except actions.ConversationError as error:
            await self._send(error_frame(error.code, error.message, rating.client_id))
            return
        await self._send(rated)

    async def _may_ask(self, routed: Routed | None) -> bool:
        """Whether this client's address may start another large-model job (flood control: a script
        opening conversation after conversation is still one address)."""
        if routed is None or routed.route.destination != Destination.LARGE:
            return True
        return await flood.escalation_allowed(self.address)

    async def _route(self, text: str, language: str | None) -> Routed:
        try:
            return await batching.route(Incoming(text, language))
        except ModelNotTrained:
            return unavailable(Thresholds.current())
        except Exception:
            # The small model could not read this message: it is stored and escalated like any message
            # the small model cannot answer, never dropped.
            logger.exception("The small model failed on a message in conversation %s", self.conversation_id)
            return unavailable(Thresholds.current())

    async def chat_erased(self, event: dict[str, Any]) -> None:
        await self._send(error_frame(CONVERSATION_ERASED, "This conversation was erased.", None))
        await self._close(NORMAL_CLOSURE)

    async def chat_frame(self, event: dict[str, Any]) -> None:
        if event.get("skip") == self.channel_name:
            return  # this socket sent it itself (a frame with no seq, such as `rated`, has no other check)
        await self._deliver(event["frame"])

    async def _deliver(self, frame: dict[str, Any]) -> None:
        seq = frame.get("seq")
        if seq is None:
            await self._send(frame)
            return
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            # A group message went missing (channel full, Redis hiccup): fill the gap from the database.
            await self._send_backlog()
            if seq <= self.last_seq:
                return
        await self._send(frame)
        self.last_seq = seq

    async def _send_backlog(self) -> None:
        for payload in await database_sync_to_async(actions.events_after)(self.conversation_id, self.last_seq):
            await self._send(payload)
            self.last_seq = payload["seq"]

    async def _send(self, frame: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=json.dumps(frame))

    async def _close(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)
