import json
import re

import pytest

from support.conversations.protocol import (
    CustomerMessage,
    FrameError,
    parse_after,
    parse_client_frame,
    token_from_subprotocols,
    token_subprotocol,
)


def parse_message(raw: str) -> CustomerMessage:
    frame = parse_client_frame(raw)
    assert isinstance(frame, CustomerMessage)
    return frame


def test_a_valid_message_is_parsed_and_trimmed() -> None:
    frame = parse_message(json.dumps({"type": "message", "id": "c1", "text": "  hello  "}))
    assert (frame.client_id, frame.text) == ("c1", "hello")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "invalid_json"),
        ("{", "invalid_json"),
        ('"text"', "invalid_frame"),
        ('{"type": "ping"}', "unknown_type"),
        ('{"text": "hi", "id": "a"}', "missing_field"),
        ('{"type": "message", "text": "hi"}', "missing_field"),
        ('{"type": "message", "id": "", "text": "hi"}', "invalid_id"),
        ('{"type": "message", "id": 7, "text": "hi"}', "invalid_id"),
        (json.dumps({"type": "message", "id": "x" * 101, "text": "hi"}), "invalid_id"),
        ('{"type": "message", "id": "a"}', "missing_field"),
        ('{"type": "message", "id": "a", "text": null}', "invalid_text"),
        ('{"type": "message", "id": "a", "text": "\\n\\t "}', "empty_text"),
        (json.dumps({"type": "message", "id": "a", "text": "é" * 2001}), "text_too_long"),
        ('{"type": "message", "id": "a", "text": "\\ud800"}', "invalid_text"),
        (json.dumps({"type": "message", "id": "a", "text": "a\x00b"}), "invalid_text"),
        (json.dumps({"type": "message", "id": "a", "text": "a\x7fb"}), "invalid_text"),
        ('{"type": "message", "id": "\\udc00", "text": "hi"}', "invalid_id"),
        ('{"type": "message", "id": "a", "text": "hi", "n": ' + "1" * 5000 + "}", "invalid_json"),
        ('{"type": "message", "id": "a", "text": "hi", "n": NaN}', "invalid_json"),
        ("[" * 10_000 + "]" * 10_000, "invalid_json"),
        (json.dumps({"type": "message", "id": "a", "text": "a" * 40_000}), "frame_too_large"),
    ],
)
def test_bad_frames_are_named(raw: str | None, code: str) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(raw)
    assert error.value.code == code


def test_line_breaks_tabs_and_every_script_are_text() -> None:
    text = "Première ligne\n\tзаказ 注文 🙂"
    assert parse_message(json.dumps({"type": "message", "id": "a", "text": text})).text == text


def test_the_longest_message_fits_in_a_frame_even_written_as_escapes() -> None:
    raw = json.dumps({"type": "message", "id": "x" * 100, "text": "🙂" * 2000})  # 12 characters an emoji
    assert len(parse_message(raw).text) == 2000


def test_exactly_2000_characters_is_allowed() -> None:
    assert len(parse_message(json.dumps({"type": "message", "id": "a", "text": "a" * 2000})).text) == 2000


@pytest.mark.parametrize(("raw", "after"), [(None, 0), ("", 0), ("7", 7), ("-3", 0), ("abc", 0)])
def test_after_defaults_to_replaying_everything(raw: str | None, after: int) -> None:
    assert parse_after(raw) == after


def test_a_token_offered_as_a_subprotocol_is_read_back_whole() -> None:
    token = "IjBmODhjNmE1LTYzNzEtNDNkNi05MTljLWVmOWE4ZWNiNjNlYiI:1xXjL1:m51-3bShtKNfdaYB3l8AWpfHSbzn1Bti_RyGfZ-R0uY"
    offered = ["tandem.v1", token_subprotocol(token)]
    assert all(re.fullmatch(r"[A-Za-z0-9._~-]+", protocol) for protocol in offered)  # valid header tokens
    assert token_from_subprotocols(offered) == token
    assert token_from_subprotocols(["tandem.v1"]) is None
    assert token_from_subprotocols(["tandem.token.%%%"]) is None
