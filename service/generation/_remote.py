"""A generator backend for any server that speaks OpenAI's chat-completions API.

vLLM, OpenVINO Model Server and llama.cpp's ``llama-server`` all serve ``POST {base}/chat/completions``
with server-sent events when ``stream`` is true; this backend streams from one of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import structlog

from citeline.ingest import FetchError, parse_retry_after
from citeline.ingest.bounded import ACCEPT_HEADERS, read_prefix_sync
from citeline.service.exceptions import GenerationError
from citeline.service.generation._base import ChatMessage, GenerationResult, TokenCallback

log = structlog.get_logger("citeline.generation")

#: Statuses that mean "the server is busy or restarting", worth another try before any text arrived.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_BODY_EXCERPT_CHARS = 300
_MAX_ERROR_BODY = 16_384
"""Bytes of an error answer read (its excerpt goes into the error message)."""
_MAX_COMPLETION_BODY = 4 * 1024 * 1024
"""Bytes of a non-streamed completion read: far beyond any answer of ``max_tokens`` tokens."""


class OpenAICompatibleGenerator:
    """Streams chat completions from an OpenAI-compatible server.

    ``base_url`` is the API root, e.g. ``http://127.0.0.1:8080/v1``; ``model`` is the name the server
    serves the model under. ``api_key``, when given, is sent as a Bearer token and never logged.

    A call is retried (``retries`` more times, exponential backoff from ``backoff_s``, or the server's
    ``Retry-After`` capped at ``max_retry_after_s``) on connection failures and on 429/502/503/504, but
    only before the first piece of text: once text reached ``on_text`` the caller may have shown it, so
    a failure after that raises :class:`GenerationError` instead of starting over.

    Token counts come from the stream's final ``usage`` chunk (requested with ``stream_options``);
    a server that sends none, or a call stopped early by ``on_text``, reports 0 prompt and completion
    tokens rather than a guess.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        # Only the encodings ingest's bounded decoder reads, so no answer is read without a size bound.
        headers = {"Accept": "text/event-stream", **ACCEPT_HEADERS}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # One timeout for connect, read (between streamed chunks), write and pool waits.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport)

    @property
    def model_name(self) -> str:
        return self._model

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatibleGenerator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if seed is not None:
            body["seed"] = seed
        url = f"{self.base_url}/chat/completions"
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                stream = _Stream(started, on_text)
                with self._client.stream("POST", url, json=body) as response:
                    if response.status_code != httpx.codes.OK:
                        error_body, _ = read_prefix_sync(response, _MAX_ERROR_BODY, url)
                        wait = self._retry_wait(response, attempt)
                        if wait is None:
                            raise self._status_error(response, error_body)
                        log.warning(
                            "generator busy, retrying",
                            status=response.status_code,
                            base_url=self.base_url,
                            attempt=attempt + 1,
                            wait_s=round(wait, 2),
                        )
                    else:
                        stream.consume(response)
                        return stream.result()
            except httpx.ConnectError as exc:  # ConnectTimeout is a TimeoutException, handled below
                if attempt >= self.retries:
                    raise GenerationError(
                        f"cannot connect to the generator at {self.base_url} after {attempt + 1} tries: {exc}"
                    ) from exc
                wait = self._backoff(attempt)
                log.warning("generator unreachable, retrying", base_url=self.base_url, attempt=attempt + 1)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < self.retries:
                    wait = self._backoff(attempt)
                    log.warning("generator connect timed out, retrying", base_url=self.base_url, attempt=attempt + 1)
                else:
                    what = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
                    raise GenerationError(
                        f"timed out after {self.timeout_s:g} s {what} the generator at {self.base_url}"
                        + (" (after text had started)" if stream.received_text else "")
                    ) from exc
            except (FetchError, ValueError) as exc:  # an undecodable or oversized body, or not JSON
                raise GenerationError(f"the generator at {self.base_url} sent an unreadable answer: {exc}") from exc
            except httpx.HTTPError as exc:
                # Read errors, protocol errors: the connection broke, possibly mid-answer. Never retried:
                # the server got the request and may have started (or shown, through on_text) an answer.
                raise GenerationError(
                    f"the generator at {self.base_url} broke off the response"
                    + (" mid-stream" if stream.received_text else "")
                    + f": {type(exc).__name__}: {exc}"
                ) from exc
            attempt += 1
            self._sleep(wait)

    # -- retry policy ------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_s * 2**attempt, self.max_retry_after_s))

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None when this response is final."""
        if response.status_code not in RETRYABLE_STATUSES or attempt >= self.retries:
            return None
        after = parse_retry_after(response.headers.get("Retry-After"))
        if after is None:
            return self._backoff(attempt)
        return min(max(after, 0.0), self.max_retry_after_s)

    def _status_error(self, response: httpx.Response, body: bytes) -> GenerationError:
        excerpt = " ".join(body.decode("utf-8", "replace").split())[:_BODY_EXCERPT_CHARS]
        return GenerationError(
            f"the generator at {self.base_url} answered HTTP {response.status_code}"
            + (f": {excerpt}" if excerpt else "")
        )


class _Stream:
    """State of one streamed completion: text so far, timings and usage."""

    def __init__(self, started: float, on_text: TokenCallback | None) -> None:
        self.started = started
        self.on_text = on_text
        self.pieces: list[str] = []
        self.first: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finished = False
        self.stopped = False

    @property
    def received_text(self) -> bool:
        return self.first is not None

    def consume(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            # A server that ignores ``stream`` answers with one completion object.
            body, over = read_prefix_sync(response, _MAX_COMPLETION_BODY, str(response.url))
            if over:
                raise GenerationError(f"the generator's answer is over {_MAX_COMPLETION_BODY} bytes")
            self._chunk(json.loads(body), delta_key="message")
            self.finished = True
            return
        for data in _sse_data(response.iter_lines()):
            if data == "[DONE]":
                self.finished = True
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise GenerationError(
                    f"the generator sent an unreadable event: {data[:_BODY_EXCERPT_CHARS]!r}"
                ) from exc
            if self._chunk(chunk, delta_key="delta"):
                self.stopped = True
                return  # leaving the ``with`` closes the stream, which tells the server to stop
        if not self.finished:
            raise GenerationError("the generator's stream ended before the answer was complete")

    def _chunk(self, chunk: Any, *, delta_key: str) -> bool:
        """Take one event; True when ``on_text`` asked to stop."""
        if not isinstance(chunk, dict):
            raise GenerationError(f"the generator sent an unexpected event: {str(chunk)[:_BODY_EXCERPT_CHARS]!r}")
        if "error" in chunk:
            raise GenerationError(f"the generator reported an error: {str(chunk['error'])[:_BODY_EXCERPT_CHARS]}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finished = True
            delta = choice.get(delta_key)
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                if self.first is None:
                    self.first = time.perf_counter() - self.started
                self.pieces.append(content)
                if self.on_text is not None and self.on_text(content):
                    return True
        return False

    def result(self) -> GenerationResult:
        seconds = time.perf_counter() - self.started
        return GenerationResult(
            text="".join(self.pieces),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            time_to_first_token=self.first if self.first is not None else seconds,
            seconds=seconds,
        )


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The payload of each ``data:`` line. Chat-completion events are one JSON line each, so a line is
    taken as soon as it arrives rather than at the blank line that ends the event."""
    for line in lines:
        field, _, value = line.partition(":")
        if field == "data":
            yield value.removeprefix(" ")
        # anything else: blank separators, ``: keep-alive`` comments, ``event:``/``id:`` fields
