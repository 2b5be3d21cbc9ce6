"""A deterministic generator for fast tests: replies come from a function of the prompt."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from citeline.service.generation._base import ChatMessage, GenerationResult, TokenCallback

Script = Callable[[Sequence[ChatMessage]], str]


class ScriptedGenerator:
    """Answers with ``script(messages)``, streamed word by word; records every call."""

    def __init__(self, script: Script | str, name: str = "scripted") -> None:
        if isinstance(script, str):
            fixed_reply = script

            def script(_messages: Sequence[ChatMessage]) -> str:
                return fixed_reply

        self._script: Script = script
        self._name = name
        self.calls: list[list[ChatMessage]] = []

    @property
    def model_name(self) -> str:
        return self._name

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        del temperature, seed
        started = time.perf_counter()
        self.calls.append(list(messages))
        words = self._script(messages).split(" ")[:max_new_tokens]
        first = 0.0
        emitted: list[str] = []
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            emitted.append(piece)
            if i == 0:
                first = time.perf_counter() - started
            if on_text is not None and on_text(piece):
                break
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        return GenerationResult(
            text="".join(emitted),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(emitted),
            time_to_first_token=first,
            seconds=time.perf_counter() - started,
        )
