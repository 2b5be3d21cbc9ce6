"""The default generator: an OpenVINO int4 model run by openvino-genai on the CPU."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from citeline.service.exceptions import GenerationError, ModelNotPreparedError
from citeline.service.generation._artifacts import is_ready
from citeline.service.generation._base import ChatMessage, GenerationResult, TokenCallback


class OpenVINOGenerator:
    """openvino-genai ``LLMPipeline`` over a prepared IR directory.

    The pipeline keeps a prefix cache, so a prompt that starts with the same system message and
    few-shot turns as the previous one only pays for its new tokens.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "CPU",
        cache_dir: Path | None = None,
        prompt_lookup: int = 0,
        plugin_properties: dict[str, Any] | None = None,
    ) -> None:
        """``prompt_lookup``: candidate tokens drafted per step from n-grams of the prompt (0: off);
        greedy answers copy phrases from their sources, so drafts are often accepted and the output
        is the same. ``plugin_properties``: extra CPU plugin settings, e.g.
        ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` or ``KV_CACHE_PRECISION`` (bench/decoding.py)."""
        if not is_ready(model_dir):
            raise ModelNotPreparedError(f"no prepared model in {model_dir}: run `citeline models prepare` first")
        os.environ["HF_HUB_OFFLINE"] = "1"
        import openvino_genai

        self._genai = openvino_genai
        properties: dict[str, Any] = dict(plugin_properties or {})
        if prompt_lookup:
            properties["prompt_lookup"] = True
        self._prompt_lookup = prompt_lookup
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            properties["CACHE_DIR"] = str(cache_dir)
        self._pipeline = openvino_genai.LLMPipeline(str(model_dir), device, **properties)
        self._tokenizer = self._pipeline.get_tokenizer()
        self._name = model_dir.name
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._name

    def count_tokens(self, text: str) -> int:
        return int(self._tokenizer.encode(text).input_ids.get_shape()[1])

    def prompt_token_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The token ids ``generate`` feeds the model for ``messages`` (the prefix cache matches on them)."""
        prompt = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True
        )
        return [int(t) for t in self._tokenizer.encode(prompt).input_ids.data.reshape(-1)]

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        genai = self._genai
        history = [{"role": m.role, "content": m.content} for m in messages]
        prompt = self._tokenizer.apply_chat_template(history, add_generation_prompt=True)
        config = genai.GenerationConfig()
        config.max_new_tokens = max_new_tokens
        config.apply_chat_template = False
        if temperature > 0:
            config.do_sample = True
            config.temperature = temperature
            config.top_p = 0.95
            if seed is not None:
                config.rng_seed = seed
        else:
            config.do_sample = False
        if self._prompt_lookup:
            config.num_assistant_tokens = self._prompt_lookup
            config.max_ngram_size = 3
        started = time.perf_counter()
        first: list[float] = []

        stopped: list[bool] = []

        def streamer(piece: str) -> Any:
            if not first:
                first.append(time.perf_counter() - started)
            # The pipeline flushes its detokenizer once more after a STOP: the caller asked for no more.
            if stopped or (on_text is not None and on_text(piece)):
                stopped.append(True)
                return genai.StreamingStatus.STOP
            return genai.StreamingStatus.RUNNING

        with self._lock:
            try:
                result = self._pipeline.generate([prompt], config, streamer=streamer)
            except RuntimeError as exc:
                raise GenerationError(f"generation failed: {exc}") from exc
        seconds = time.perf_counter() - started
        metrics = result.perf_metrics
        return GenerationResult(
            text=str(result.texts[0]),
            prompt_tokens=int(metrics.get_num_input_tokens()),
            completion_tokens=int(metrics.get_num_generated_tokens()),
            time_to_first_token=first[0] if first else seconds,
            seconds=seconds,
        )
