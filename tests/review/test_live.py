"""Agents' pages take live updates in batches, and fetch only the parts that change."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from support.conversations import actions
from support.conversations.models import Conversation
from support.review import consumers
from support.review.consumers import StaffConsumer
from tests.conftest import post_as_server


async def staff_socket(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(StaffConsumer.as_asgi(), "/ws/staff/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def change(conversation: str, what: str = "escalated") -> dict[str, str]:
    return {"type": "queue.changed", "conversation": conversation, "change": what}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_flood_of_escalations_reaches_an_agents_page_as_one_batch(agent: User, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "BATCH_SECONDS", 0.3)
    page = await staff_socket(agent)
    layer = get_channel_layer()
    # 90 events (the in-memory channel layer of the tests holds 100 a channel; Redis, 1,000).
    for number in range(90):
        await layer.group_send("staff", change(f"c{number % 30}", f"change-{number}"))
    batch = json.loads(await page.receive_from(timeout=3))
    assert batch["type"] == "changes" and "many" not in batch
    # One entry per conversation, with its latest change (and the page's own agent coming online).
    changes = [entry for entry in batch["changes"] if entry["conversation"] != "presence"]
    assert len(changes) == 30
    assert {"conversation": "c7", "change": "change-67"} in changes
    assert await page.receive_nothing(timeout=0.5)
    # The next change starts the next batch.
    await layer.group_send("staff", change("c1", "closed"))
    assert json.loads(await page.receive_from(timeout=3))["changes"] == [{"conversation": "c1", "change": "closed"}]
    await page.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_batch_too_long_to_list_says_many(agent: User, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "BATCH_SECONDS", 0.3)
    monkeypatch.setattr(consumers, "BATCH_LIMIT", 10)
    page = await staff_socket(agent)
    layer = get_channel_layer()
    await asyncio.gather(*(layer.group_send("staff", change(f"c{number}")) for number in range(30)))
    batch = json.loads(await page.receive_from(timeout=3))
    assert batch["many"] is True and len(batch["changes"]) == 10
    await page.disconnect()


@pytest.fixture
def escalated(knowledge_base: None, small_model_dir: object) -> Conversation:
    with (
        mock.patch("support.conversations.broadcast.send_to_conversation"),
        mock.patch("support.conversations.broadcast.send_to_staff"),
    ):
        session = actions.open_session(None)
        post_as_server(session.conversation_id, "m1", "Can I speak to a human please?")
    return Conversation.objects.get(pk=session.conversation_id)


@pytest.mark.django_db
def test_the_queue_and_a_conversation_give_only_their_live_parts_when_asked(
    escalated: Conversation, agent: User
) -> None:
    client = Client()
    client.force_login(agent)
    rows = client.get("/review/?partial=live").content.decode()
    assert 'id="live-queue"' in rows and str(escalated.id) in rows and "<html" not in rows
    parts = client.get(f"/review/{escalated.id}/?partial=live").content.decode()
    assert 'id="live-conversation"' in parts and 'id="live-controls"' in parts
    assert "Can I speak to a human please?" in parts
    # The reply box is never replaced: what an agent is typing stays.
    assert "reply-text" not in parts and "<html" not in parts
    whole = client.get(f"/review/{escalated.id}/").content.decode()
    assert 'id="live-conversation"' in whole and "reply-text" in whole
    for page in (rows, parts, whole):
        assert "{#" not in page and "#}" not in page and "comment %}" not in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_agent_with_a_desk_page_open_is_shown_online_until_it_closes(
    agent: User, other_agent: User, monkeypatch
) -> None:
    from channels.db import database_sync_to_async

    from support.review import actions as review_actions

    online = database_sync_to_async(lambda: [user.username for user in review_actions.online_agents()])
    assert await online() == []
    first = await staff_socket(agent)
    second = await staff_socket(other_agent)
    assert await online() == ["agent", "other-agent"]
    page = await database_sync_to_async(lambda: _logged_in(agent).get("/review/").content.decode())()
    assert 'data-online="other-agent"' in page and 'data-online="agent"' in page
    await second.disconnect()
    assert await online() == ["agent"]
    # A page that stopped pinging (its server died) ages out.
    monkeypatch.setattr(review_actions, "PRESENCE_SECONDS", 0)
    assert await online() == []
    await first.disconnect()


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_agent_typing_shows_the_customer_who_is_writing_but_not_in_someone_else_s_chat(
    agent: User, other_agent: User
) -> None:
    from channels.db import database_sync_to_async

    from support.conversations import broadcast

    conversation = await database_sync_to_async(Conversation.objects.create)()
    layer = get_channel_layer()
    customer = await layer.new_channel()
    await layer.group_add(broadcast.group_name(conversation.id), customer)
    page = await staff_socket(agent)
    typing = json.dumps({"type": "typing", "conversation": str(conversation.id)})
    await page.send_to(text_data=typing)
    got = await asyncio.wait_for(layer.receive(customer), 3)
    assert got == {"type": "chat.frame", "frame": {"type": "typing", "agent": "Alex"}}
    # Within 2 s, another notice from the same page is not passed on.
    await page.send_to(text_data=typing)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(customer), 0.5)
    # Another agent owns the conversation: this agent's typing is not passed on.
    await database_sync_to_async(actions.take_over)(conversation.id, other_agent)
    await asyncio.sleep(2.1)
    await page.send_to(text_data=typing)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(customer), 0.5)
    # Nonsense is ignored, and the socket stays open.
    for junk in ("{", '{"type":"typing","conversation":"not-a-uuid"}', "[1]", "x" * 500):
        await page.send_to(text_data=junk)
    outputs = []
    while not await page.receive_nothing(timeout=1.5):  # until nothing more comes: live batches, no close
        outputs.append(await page.receive_output())
    assert all(output["type"] == "websocket.send" for output in outputs)
    await page.disconnect()
