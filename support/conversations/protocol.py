"""WebSocket protocol v1: parsing client frames and building the frames that are not stored events.

The full protocol is described in docs/protocol.md.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from django.conf import settings

MAX_CLIENT_ID_CHARS = 100
# The longest comment a rating may carry (Rating.comment), after trimming.
MAX_RATING_COMMENT_CHARS = 1000
# A frame longer than this is refused before it is parsed. The longest valid message frame is 2,000
# characters of text written as JSON escapes (12 characters for an emoji) plus its id: under 32 K. The
# server itself closes frames over 1 MiB (scripts/tandem.py, --ws-max-size) without reading them.
MAX_FRAME_CHARS = 32 * 1024
# Characters that are not text: C0 and C1 control characters except tab, line feed and carriage return,
# and unpaired surrogates (valid JSON escapes, but not Unicode text: no database, tokenizer or UTF-8
# encoder takes them).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# The error code of a frame refused by flood control; the frame also carries `retry_after` (seconds).
RATE_LIMITED = "rate_limited"
# The error code of a frame that was valid but could not be handled (the server failed): send it again.
SERVER_ERROR = "server_error"


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


@dataclass(frozen=True)
class CustomerRating:
    """A thumbs up (+1) or down (-1) on the answers to the customer message `reply_to` (its client id), or
    on the whole conversation (`reply_to` None), with a comment ("" when none)."""

    client_id: str
    reply_to: str | None
    score: int
    comment: str


ClientFrame = CustomerMessage | CustomerRating


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _usable_id(value: object) -> str | None:
    """A client id: a string of 1-100 characters, not only spaces, with no control characters."""
    if not isinstance(value, str) or _NOT_TEXT.search(value) or not value.strip() or len(value) > MAX_CLIENT_ID_CHARS:
        return None
    return value


def parse_client_frame(raw: str | None) -> ClientFrame:
    if raw is None:
        raise FrameError("invalid_json", "Frames must be JSON text, not binary.")
    if len(raw) > MAX_FRAME_CHARS:
        raise FrameError("frame_too_large", f"A frame must be at most {MAX_FRAME_CHARS} characters.")
    try:
        # ValueError covers malformed JSON, NaN and Infinity, and integers too long to convert (over
        # 4,300 digits); RecursionError, nesting too deep to parse.
        frame = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise FrameError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid_frame", "A frame must be a JSON object.")
    client_id = frame.get("id")
    client_id = client_id if isinstance(client_id, str) and not _NOT_TEXT.search(client_id) else None
    frame_type = frame.get("type")
    if frame_type is None:
        raise FrameError("missing_field", 'The frame has no "type".', client_id)
    if frame_type not in ("message", "rating"):
        raise FrameError("unknown_type", f"Unknown frame type {str(frame_type)[:40]!r}.", client_id)
    if "id" not in frame:
        raise FrameError("missing_field", f'A {frame_type} needs an "id".')
    usable_id = _usable_id(client_id)
    if usable_id is None:
        raise FrameError(
            "invalid_id",
            f'"id" must be a non-empty string of at most {MAX_CLIENT_ID_CHARS} characters, with no control characters.',
        )
    client_id = usable_id
    if frame_type == "rating":
        return _parse_rating(frame, client_id)
    if "text" not in frame:
        raise FrameError("missing_field", 'A message needs a "text".', client_id)
    text = frame["text"]
    if not isinstance(text, str):
        raise FrameError("invalid_text", '"text" must be a string.', client_id)
    if _NOT_TEXT.search(text):
        raise FrameError(
            "invalid_text",
            '"text" holds characters that are not text (control characters or unpaired surrogates).',
            client_id,
        )
    text = text.strip()
    if not text:
        raise FrameError("empty_text", "The message is empty.", client_id)
    limit = settings.TANDEM_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise FrameError("text_too_long", f"The message is longer than {limit} characters.", client_id)
    return CustomerMessage(client_id=client_id, text=text)


def _parse_rating(frame: dict[str, Any], client_id: str) -> CustomerRating:
    if "reply_to" not in frame:
        raise FrameError(
            "missing_field", 'A rating needs a "reply_to" (null to rate the whole conversation).', client_id
        )
    reply_to = frame["reply_to"]
    if reply_to is not None and _usable_id(reply_to) is None:
        raise FrameError("invalid_reply_to", '"reply_to" must be the id of one of your messages, or null.', client_id)
    if "score" not in frame:
        raise FrameError("missing_field", 'A rating needs a "score" (1 or -1).', client_id)
    score = frame["score"]
    # JSON true is a Python bool, which is an int equal to 1: not a score.
    if isinstance(score, bool) or not isinstance(score, int) or score not in (1, -1):
        raise FrameError("invalid_score", '"score" must be 1 (thumbs up) or -1 (thumbs down).', client_id)
    comment = frame.get("comment")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise FrameError("invalid_comment", '"comment" must be a string or null.', client_id)
    if _NOT_TEXT.search(comment):
        raise FrameError(
            "invalid_comment",
            '"comment" holds characters that are not text (control characters or unpaired surrogates).',
            client_id,
        )
    comment = comment.strip()
    if len(comment) > MAX_RATING_COMMENT_CHARS:
        raise FrameError(
            "comment_too_long", f"The comment is longer than {MAX_RATING_COMMENT_CHARS} characters.", client_id
        )
    return CustomerRating(client_id=client_id, reply_to=reply_to, score=score, comment=comment)


def rated_frame(client_id: str | None, reply_to: str | None, score: int, comment: str) -> dict[str, Any]:
    """Not stored: a rating was saved (to the socket that sent it, with its id, and to the conversation's
    other sockets; on a fresh page's connection, one per rating already given, with id null)."""
    return {"type": "rated", "id": client_id, "reply_to": reply_to, "score": score, "comment": comment}


def error_frame(code: str, message: str, client_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "id": client_id}


def rate_limited_frame(retry_after: int, client_id: str | None = None) -> dict[str, Any]:
    """Over a flood-control limit (support/conversations/flood.py): nothing was stored; try again later."""
    message = f"You're sending messages too quickly; please try again in {retry_after} s."
    return {**error_frame(RATE_LIMITED, message, client_id), "retry_after": retry_after}


def typing_frame(agent: str) -> dict[str, Any]:
    """Not stored: an agent is writing a reply in this conversation."""
    return {"type": "typing", "agent": agent}


def session_frame(conversation_id: str, token: str) -> dict[str, Any]:
    return {"type": "session", "conversation": conversation_id, "token": token}


def token_frame(reply_to: str | None, text: str, restart: bool = False) -> dict[str, Any]:
    """A piece of a large-model answer. `restart`: the answer is being written again from the start (the
    worker writing it stopped): drop what earlier tokens showed."""
    frame: dict[str, Any] = {"type": "token", "reply_to": reply_to, "text": text}
    if restart:
        frame["restart"] = True
    return frame


# The WebSocket subprotocol of protocol v1. A client offers it, and its token as a second subprotocol
# "tandem.token.<the token, base64url without padding>" (docs/protocol.md).
SUBPROTOCOL = "tandem.v1"
TOKEN_SUBPROTOCOL = "tandem.token."


def token_from_subprotocols(offered: list[str]) -> str | None:
    """The conversation token a client offered as a subprotocol, or None."""
    for protocol in offered:
        if protocol.startswith(TOKEN_SUBPROTOCOL):
            encoded = protocol[len(TOKEN_SUBPROTOCOL) :]
            try:
                padded = encoded + "=" * (-len(encoded) % 4)
                token = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
            except (ValueError, UnicodeDecodeError):
                return None
            return token or None
    return None


def token_subprotocol(token: str) -> str:
    return TOKEN_SUBPROTOCOL + base64.urlsafe_b64encode(token.encode("ascii")).decode("ascii").rstrip("=")


def parse_after(raw: str | None) -> int:
    """The `after` query parameter; anything that is not a non-negative integer means 0 (replay all)."""
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0
