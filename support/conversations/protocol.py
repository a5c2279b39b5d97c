"""WebSocket protocol v1: parsing client frames and building the frames that are not stored events.

The full protocol is described in docs/protocol.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_CLIENT_ID_CHARS = 100


class FrameError(Exception):
    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


@dataclass(frozen=True)
class CustomerMessage:
    client_id: str
    text: str


def parse_client_frame(raw: str | None) -> CustomerMessage:
    if raw is None:
        raise FrameError("invalid_json", "Frames must be JSON text, not binary.")
    try:
        frame = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid_frame", "A frame must be a JSON object.")
    client_id = frame.get("id")
    client_id = client_id if isinstance(client_id, str) else None
    frame_type = frame.get("type")
    if frame_type is None:
        raise FrameError("missing_field", 'The frame has no "type".', client_id)
    if frame_type != "message":
        raise FrameError("unknown_type", f"Unknown frame type {str(frame_type)[:40]!r}.", client_id)
    if "id" not in frame:
        raise FrameError("missing_field", 'A message needs an "id".')
    if client_id is None or not client_id.strip() or len(client_id) > MAX_CLIENT_ID_CHARS:
        raise FrameError("invalid_id", f'"id" must be a non-empty string of at most {MAX_CLIENT_ID_CHARS} characters.')
    if "text" not in frame:
        raise FrameError("missing_field", 'A message needs a "text".', client_id)
    text = frame["text"]
    if not isinstance(text, str):
        raise FrameError("invalid_text", '"text" must be a string.', client_id)
    text = text.strip()
    if not text:
        raise FrameError("empty_text", "The message is empty.", client_id)
    limit = settings.TANDEM_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise FrameError("text_too_long", f"The message is longer than {limit} characters.", client_id)
    return CustomerMessage(client_id=client_id, text=text)


def error_frame(code: str, message: str, client_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "id": client_id}


def session_frame(conversation_id: str, token: str) -> dict[str, Any]:
    return {"type": "session", "conversation": conversation_id, "token": token}


def token_frame(reply_to: str | None, text: str) -> dict[str, Any]:
    return {"type": "token", "reply_to": reply_to, "text": text}


def parse_after(raw: str | None) -> int:
    """The `after` query parameter; anything that is not a non-negative integer means 0 (replay all)."""
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0
