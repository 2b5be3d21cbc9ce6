"""The generator interface every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
#: Called with each new piece of text; returning True asks the backend to stop early.
TokenCallback = Callable[[str], bool | None]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    """Seconds from the call to the first generated piece of text."""
    seconds: float
    """Seconds for the whole call."""

    @property
    def tokens_per_second(self) -> float:
        decode = self.seconds - self.time_to_first_token
        return (self.completion_tokens - 1) / decode if decode > 0 and self.completion_tokens > 1 else 0.0


@runtime_checkable
class Generator(Protocol):
    """Writes a chat completion. Implementations need not be thread-safe: callers serialise."""

    @property
    def model_name(self) -> str: ...

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        """Continue the conversation with one assistant message."""
