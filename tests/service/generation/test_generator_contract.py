"""The contract every :class:`~service.generation.Generator` keeps, run against each backend.

- the scripted fake (what unit tests answer with);
- the OpenAI-compatible client, over an in-process server that streams a scripted reply as
  chat-completion chunks (its wire format and failures are in ``test_remote_generator.py``);
- the OpenVINO default over the prepared model (e2e: the real model, loaded once).

The contract: a streamed piece is never lost or invented (the pieces joined are the text), a
callback that returns True stops the generation early with only what was streamed, the token
budget holds, timings are ordered, and a failing backend raises :class:`GenerationError` (or, for
a model nobody prepared, :class:`ModelNotPreparedError`), never a library's own exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from citeline.service.exceptions import CitelineServiceError, GenerationError, ModelNotPreparedError
from citeline.service.generation import (
    ChatMessage,
    GenerationResult,
    Generator,
    OpenAICompatibleGenerator,
    OpenVINOGenerator,
    ScriptedGenerator,
)
from citeline.service.settings import ServiceSettings

MESSAGES = [
    ChatMessage("system", "Answer in one short sentence."),
    ChatMessage("user", "Which module in the Python standard library reads and writes CSV files?"),
]
REPLY = "The csv module reads and writes tabular data in CSV format, as the documentation says."


def _scripted() -> Generator:
    return ScriptedGenerator(REPLY)


def _sse(reply: str, max_tokens: int) -> bytes:
    """The reply as an OpenAI server streams it: one chunk per word, usage, then ``[DONE]``."""
    words = reply.split(" ")[:max_tokens]
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [
        {"choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}]}
        for i, w in enumerate(words)
    ]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": len(words)}})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def _remote(handler: Callable[[httpx.Request], httpx.Response] | None = None) -> OpenAICompatibleGenerator:
    def serve(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=_sse(REPLY, body["max_tokens"])
        )

    return OpenAICompatibleGenerator(
        "http://llm.test/v1", "scripted-remote", transport=httpx.MockTransport(handler or serve), retries=0
    )


@pytest.fixture(scope="module")
def openvino() -> Generator:
    settings = ServiceSettings()
    return OpenVINOGenerator(settings.generator_dir(), cache_dir=settings.openvino_cache_dir())


BACKENDS = [
    pytest.param("scripted", id="scripted"),
    pytest.param("remote", id="openai-compatible"),
    pytest.param("openvino", id="openvino", marks=pytest.mark.e2e),
]


@pytest.fixture(params=BACKENDS)
def generator(request: pytest.FixtureRequest) -> Generator:
    if request.param == "scripted":
        return _scripted()
    if request.param == "remote":
        return _remote()
    backend: Generator = request.getfixturevalue("openvino")
    return backend


def test_it_is_a_generator_with_a_name(generator: Generator) -> None:
    assert isinstance(generator, Generator)
    assert isinstance(generator.model_name, str)
    assert generator.model_name


def test_streamed_pieces_are_the_text(generator: Generator) -> None:
    pieces: list[str] = []
    result = generator.generate(MESSAGES, max_new_tokens=40, on_text=pieces.append)
    assert isinstance(result, GenerationResult)
    assert result.text.strip()
    assert len(pieces) > 1
    assert "".join(pieces) == result.text
    assert result.completion_tokens > 0
    assert result.prompt_tokens > 0
    assert 0 <= result.time_to_first_token <= result.seconds


def test_without_a_callback_the_text_is_the_same(generator: Generator) -> None:
    streamed: list[str] = []
    first = generator.generate(MESSAGES, max_new_tokens=24, on_text=streamed.append)
    again = generator.generate(MESSAGES, max_new_tokens=24)
    assert again.text == first.text == "".join(streamed)  # greedy: the same prompt, the same answer


def test_a_callback_returning_true_stops_the_generation(generator: Generator) -> None:
    full = generator.generate(MESSAGES, max_new_tokens=40)
    pieces: list[str] = []

    def stop_after_two(piece: str) -> bool:
        pieces.append(piece)
        return len(pieces) >= 2

    stopped = generator.generate(MESSAGES, max_new_tokens=40, on_text=stop_after_two)
    assert len(pieces) == 2
    assert stopped.completion_tokens < full.completion_tokens
    assert full.text.startswith(stopped.text)
    assert stopped.text.startswith("".join(pieces).strip()[:1])


def test_the_token_budget_holds(generator: Generator) -> None:
    result = generator.generate(MESSAGES, max_new_tokens=3)
    assert 0 < result.completion_tokens <= 3


def test_sampling_with_a_seed_still_answers(generator: Generator) -> None:
    result = generator.generate(MESSAGES, max_new_tokens=12, temperature=0.7, seed=7)
    assert result.text.strip()
    assert result.completion_tokens <= 12


# -- failures: each backend's own way to fail, always as a service error ----------------------


def _server_error(_: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": {"message": "model crashed"}})


def _unreadable_stream(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"data: {not json\n\n")


def _connection_refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize("handler", [_server_error, _unreadable_stream, _connection_refused])
def test_a_failing_remote_server_is_a_generation_error(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    with pytest.raises(GenerationError) as raised:
        _remote(handler).generate(MESSAGES, max_new_tokens=8)
    assert isinstance(raised.value, CitelineServiceError)


def test_an_unprepared_openvino_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="citeline models prepare"):
        OpenVINOGenerator(tmp_path / "nothing-here")


def test_a_scripted_failure_reaches_the_caller_unchanged() -> None:
    def broken(_: Any) -> str:
        raise GenerationError("scripted failure")

    with pytest.raises(GenerationError, match="scripted failure"):
        ScriptedGenerator(broken).generate(MESSAGES)
