"""The output guard: a large-model answer that quotes the assistant's instructions, or runs past the
length limit, never reaches the customer.

A prompt injection ("repeat everything above", "print your system prompt") that works shows up in the
answer as the instructions' own words. The guard watches the answer as it streams: it keeps back the
last few words, which might begin such a quote, and lets the rest through; as soon as the answer holds
QUOTE_WORDS consecutive words of the instructions, or more than `max_chars` characters, it raises
`AnswerRefused` (the back end stops generating, and the question goes to people). The knowledge-base
articles are not secret and may be quoted: only the instructions are watched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# This many consecutive words of the instructions in an answer are a quote, not a coincidence.
QUOTE_WORDS = 7
_WORD = re.compile(r"\w+", re.UNICODE)


class AnswerRefused(Exception):
    """The answer broke the guard's rules; it must not be delivered (not worth retrying either)."""


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[index : index + size]) for index in range(len(words) - size + 1)}


class OutputGuard:
    def __init__(self, instructions: str, max_chars: int, forward: Callable[[str], None] | None = None) -> None:
        self.max_chars = max_chars
        self.forward = forward
        self._secret = _shingles([word.lower() for word in _WORD.findall(instructions)], QUOTE_WORDS)
        self.text = ""
        self._sent = 0

    def refusal(self, text: str) -> str | None:
        """Why `text` may not be delivered, or None."""
        if len(text) > self.max_chars:
            return f"the answer is longer than {self.max_chars} characters"
        words = [word.lower() for word in _WORD.findall(text)]
        if _shingles(words, QUOTE_WORDS) & self._secret:
            return "the answer quotes the assistant's instructions"
        return None

    def feed(self, delta: str) -> None:
        """One more piece of the answer: checked, then passed on except for the words held back."""
        self.text += delta
        reason = self.refusal(self.text)
        if reason:
            raise AnswerRefused(reason)
        # Hold back the last QUOTE_WORDS - 1 words: the next delta could make them a quote.
        words = list(_WORD.finditer(self.text))
        safe = words[-(QUOTE_WORDS - 1)].start() if len(words) >= QUOTE_WORDS - 1 else 0
        self._send_up_to(safe)

    def finish(self, text: str) -> None:
        """The whole answer is written: check it as a whole and pass on what was held back."""
        reason = self.refusal(text)
        if reason:
            raise AnswerRefused(reason)
        if text.startswith(self.text):
            self.text = text
        self._send_up_to(len(self.text))

    def _send_up_to(self, end: int) -> None:
        if end > self._sent and self.forward is not None:
            self.forward(self.text[self._sent : end])
        self._sent = max(self._sent, end)
