"""The interface every large-model back end implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

ChatMessage = dict[str, str]
TokenCallback = Callable[[str], None]


@dataclass(frozen=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    model: str


class LLMError(Exception):
    """A failure worth retrying (server down, timeout, bad response)."""


class LLMBackend(Protocol):
    model_name: str

    def warm_up(self) -> None:
        """Get ready to answer (e.g. load weights) so the first request is not slow; may block."""
        ...

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int,
        on_token: TokenCallback | None = None,
    ) -> Generation:
        """Run one chat completion.

        `on_token` receives each text delta as it is produced; the deltas joined
        together equal the returned `Generation.text`.
        """
        ...
