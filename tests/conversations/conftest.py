"""Fixtures for the conversations app's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest


@pytest.fixture
def frames() -> Iterator[list[dict[str, Any]]]:
    """Every frame broadcast to customers' sockets; staff notices and queued tasks are dropped."""
    sent: list[dict[str, Any]] = []
    with (
        mock.patch(
            "support.conversations.broadcast.send_to_conversation",
            side_effect=lambda _id, *frames, skip=None: sent.extend(frames),
        ),
        mock.patch("support.conversations.broadcast.send_to_staff"),
        mock.patch("support.conversations.tasks.answer_with_large_model.delay"),
    ):
        yield sent
