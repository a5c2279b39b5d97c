"""Malformed chat frames of every kind, and the error code each gets (docs/protocol.md). Shared by the
integration tests (tests/integration/test_bad_input.py) and the flood benchmark (bench/bad_input.py)."""

from __future__ import annotations

import json

# Each kind of malformed frame, and the error code it gets.
MALFORMED: list[tuple[str, str | bytes, str]] = [
    ("lone surrogate in the text", '{"type":"message","id":"s1","text":"hello \\ud800 there"}', "invalid_text"),
    ("low surrogate alone", '{"type":"message","id":"s2","text":"\\udfff"}', "invalid_text"),
    ("NUL in the text", json.dumps({"type": "message", "id": "n1", "text": "hi\x00there"}), "invalid_text"),
    ("escape character", json.dumps({"type": "message", "id": "c1", "text": "\x1b[31mred"}), "invalid_text"),
    ("C1 control character", json.dumps({"type": "message", "id": "c2", "text": "a\x85b"}), "invalid_text"),
    ("surrogate in the id", '{"type":"message","id":"\\ud800","text":"hi"}', "invalid_id"),
    ("5,000-digit integer", '{"type":"message","id":"i1","text":"hi","n":' + "9" * 5000 + "}", "invalid_json"),
    ("5,000-digit id", '{"type":"message","id":' + "9" * 5000 + ',"text":"hi"}', "invalid_json"),
    ("NaN", '{"type":"message","id":"f1","text":"hi","n":NaN}', "invalid_json"),
    ("Infinity", '{"type":"message","id":"f2","text":"hi","n":-Infinity}', "invalid_json"),
    ("huge float", '{"type":"message","id":"f3","text":1e999999}', "invalid_text"),
    ("deeply nested arrays", "[" * 30_000 + "]" * 30_000, "frame_too_large"),
    ("nested just under the size limit", '{"a":' * 5_000 + "1" + "}" * 5_000, "invalid_json"),
    ("oversized frame", json.dumps({"type": "message", "id": "o1", "text": "a" * 200_000}), "frame_too_large"),
    ("binary frame", b"\x00\xff\xfe binary", "invalid_json"),
    ("empty frame", "", "invalid_json"),
    ("not JSON", "\x00\x01\x02", "invalid_json"),
    ("a JSON string", '"\\ud800"', "invalid_frame"),
]
