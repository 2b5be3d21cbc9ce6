from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from citeline.indexes import HashEmbedder, PassageIndex
from citeline.service.answering import Answerer
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.exceptions import GenerationError
from citeline.service.generation import ChatMessage, OpenAICompatibleGenerator, OpenVINOGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

BASE = "http://llm.test/v1"
MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello.")]
Handler = Callable[[httpx.Request], httpx.Response]


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}
HELLO = sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, delta("Hello"), delta(","),
            delta(" world", "stop"), USAGE, "[DONE]")  # fmt: skip


class Chunks(httpx.SyncByteStream):
    """A response body that yields ``parts`` one by one, may then fail, and records how it ended."""

    def __init__(self, parts: list[bytes], fail: Exception | None = None) -> None:
        self.parts, self.fail = parts, fail
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            self.sent += 1
            yield part
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


def streaming(body: bytes | httpx.SyncByteStream, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream", **headers}, stream=_stream(body))


def _stream(body: bytes | httpx.SyncByteStream) -> httpx.SyncByteStream:
    return body if isinstance(body, httpx.SyncByteStream) else httpx.ByteStream(body)


def generator(handler: Handler, **kwargs: Any) -> tuple[OpenAICompatibleGenerator, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("retries", 2)
    gen = OpenAICompatibleGenerator(
        BASE, "qwen-test", transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs
    )
    return gen, sleeps


def test_streams_text_and_sends_an_openai_request() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return streaming(HELLO)

    gen, _ = generator(handler, api_key="sk-secret")
    pieces: list[str] = []
    result = gen.generate(MESSAGES, max_new_tokens=32, temperature=0.2, seed=7, on_text=pieces.append)
    assert result.text == "Hello, world"
    assert pieces == ["Hello", ",", " world"]
    assert 0 <= result.time_to_first_token <= result.seconds
    assert gen.model_name == "qwen-test"
    (request,) = requests
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"
    body = json.loads(request.content)
    assert body == {
        "model": "qwen-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
        "max_tokens": 32,
        "temperature": 0.2,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_usage_chunk_gives_token_counts_and_absent_usage_counts_nothing() -> None:
    gen, _ = generator(lambda _r: streaming(HELLO))
    result = gen.generate(MESSAGES)
    assert (result.prompt_tokens, result.completion_tokens) == (12, 3)
    assert result.tokens_per_second >= 0

    no_usage = sse(delta("Hi", "stop"), "[DONE]")
    gen, _ = generator(lambda _r: streaming(no_usage))
    result = gen.generate(MESSAGES)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("Hi", 0, 0)


def test_on_text_returning_true_stops_and_closes_the_stream() -> None:
    body = Chunks([sse(delta(f"w{i} ")) for i in range(50)] + [sse(delta("", "length"), "[DONE]")])
    gen, _ = generator(lambda _r: streaming(body))
    seen: list[str] = []

    def on_text(piece: str) -> bool:
        seen.append(piece)
        return len(seen) == 3

    result = gen.generate(MESSAGES, on_text=on_text)
    assert result.text == "w0 w1 w2 "
    assert body.sent == 3, "nothing more was read after the stop"
    assert body.closed


def test_503_is_retried_with_retry_after_then_succeeds() -> None:
    calls = 0

    def handler(_request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(503, headers={"Retry-After": "2"}, text="loading model")
        if calls == 2:
            return httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down")
        return streaming(HELLO)

    gen, sleeps = generator(handler, max_retry_after_s=5.0)
    assert gen.generate(MESSAGES).text == "Hello, world"
    assert calls == 3
    assert sleeps == [2.0, 5.0], "Retry-After is honoured but capped"


def test_connect_errors_are_retried_with_backoff_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gen, sleeps = generator(handler, retries=2, backoff_s=0.25)
    with pytest.raises(GenerationError, match=r"cannot connect .*http://llm\.test/v1 after 3 tries"):
        gen.generate(MESSAGES)
    assert sleeps == [0.25, 0.5]


def test_retries_give_up_with_the_last_status() -> None:
    gen, sleeps = generator(lambda _r: httpx.Response(502, text="bad gateway"), retries=1)
    with pytest.raises(GenerationError, match="HTTP 502: bad gateway"):
        gen.generate(MESSAGES)
    assert len(sleeps) == 1


def test_a_stream_that_breaks_after_text_raises_without_retry() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return streaming(Chunks([sse(delta("Hello"))], fail=httpx.ReadError("connection reset", request=request)))

    gen, sleeps = generator(handler)
    pieces: list[str] = []
    with pytest.raises(GenerationError, match="mid-stream"):
        gen.generate(MESSAGES, on_text=pieces.append)
    assert pieces == ["Hello"]
    assert calls == 1, "text had been shown: never start over"
    assert sleeps == []


def test_a_stream_that_ends_without_done_is_an_error() -> None:
    gen, _ = generator(lambda _r: streaming(sse(delta("Hel"))))
    with pytest.raises(GenerationError, match="ended before the answer was complete"):
        gen.generate(MESSAGES)


def test_401_is_reported_without_retry_and_without_the_key() -> None:
    calls = 0

    def handler(_request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided"}})

    gen, sleeps = generator(handler, api_key="sk-very-secret")
    with pytest.raises(GenerationError, match=r"http://llm\.test/v1 answered HTTP 401: .*Incorrect API key") as info:
        gen.generate(MESSAGES)
    assert "sk-very-secret" not in str(info.value)
    assert (calls, sleeps) == (1, [])


def test_an_error_event_in_the_stream_is_reported() -> None:
    body = sse({"error": {"message": "context length exceeded"}})
    gen, _ = generator(lambda _r: streaming(body))
    with pytest.raises(GenerationError, match="context length exceeded"):
        gen.generate(MESSAGES)


def test_read_timeout_is_a_generation_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    gen, sleeps = generator(handler, timeout_s=1.5)
    with pytest.raises(GenerationError, match=r"timed out after 1\.5 s waiting for .*llm\.test"):
        gen.generate(MESSAGES)
    assert sleeps == [], "a slow server is not retried: that only doubles the wait"


def test_a_non_streaming_json_reply_is_accepted() -> None:
    reply = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    gen, _ = generator(lambda _r: httpx.Response(200, json=reply))
    result = gen.generate(MESSAGES)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("Hi there", 5, 2)


# -- settings ----------------------------------------------------------------------------------


def test_settings_build_the_remote_backend_without_the_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_local_model(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the OpenVINO model must not be loaded")

    monkeypatch.setattr(OpenVINOGenerator, "__init__", no_local_model)
    monkeypatch.setenv("CITELINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CITELINE_MODELS_DIR", str(tmp_path / "no-models"))
    settings = ServiceSettings(
        generator_backend="openai",
        generator_base_url="http://127.0.0.1:9/v1/",
        generator_api_model="served-name",
        generator_api_key="sk-hidden",
        generator_timeout_s=5,
        generator_retries=0,
    )
    assert "sk-hidden" not in repr(settings)
    gen = settings.generator()
    assert isinstance(gen, OpenAICompatibleGenerator)
    assert (gen.base_url, gen.model_name, gen.retries, gen.timeout_s) == ("http://127.0.0.1:9/v1", "served-name", 0, 5)
    gen.close()

    fallback = ServiceSettings(generator_backend="openai").generator()
    assert isinstance(fallback, OpenAICompatibleGenerator)
    assert fallback.model_name == settings.generator_model, "no API model name: the generator_model is sent"
    fallback.close()


# -- real loopback HTTP ------------------------------------------------------------------------

PAGE = (
    "The shutil module offers copyfile() to copy the contents of a file.\n"
    "The list.sort() method sorts the list in place and returns None."
)


def _reply(messages: list[dict[str, str]]) -> str:
    if messages[0]["content"] == JUDGE_SYSTEM:
        return "yes"
    for block in re.split(r"\n(?=\[\d+\] )", messages[-1]["content"]):
        if "copyfile" in block and (label := re.match(r"\[(\d+)\] ", block)):
            return f"The shutil module offers copyfile() to copy the contents of a file [{label.group(1)}]."
    return "NOT FOUND"


class OpenAIStub(BaseHTTPRequestHandler):
    """Just enough of ``POST /v1/chat/completions`` with ``stream: true``, word by word."""

    seen: list[dict[str, Any]]

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions" or self.headers.get("Authorization") != "Bearer sk-loop":
            self.send_error(404 if self.path != "/v1/chat/completions" else 401)
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(request)
        words = _reply(request["messages"]).split(" ")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, word in enumerate(words):
            self.wfile.write(sse(delta(word if i == 0 else " " + word)))
            self.wfile.flush()
        usage = {"prompt_tokens": sum(len(m["content"].split()) for m in request["messages"]),
                 "completion_tokens": len(words)}  # fmt: skip
        self.wfile.write(sse(delta("", "stop"), {"choices": [], "usage": usage}, "[DONE]"))

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def openai_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Stub", (OpenAIStub,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_answerer_answers_with_a_citation_through_a_loopback_server(
    tmp_path: Path, openai_server: tuple[str, list[dict[str, Any]]]
) -> None:
    base_url, seen = openai_server
    embedder = HashEmbedder(64)
    one_page_index(tmp_path, embedder, PAGE, url="https://docs.example/shutil.html", title="shutil")
    index = PassageIndex.open(tmp_path, "docs")
    with OpenAICompatibleGenerator(base_url, "loopback-model", api_key="sk-loop", timeout_s=5) as gen:
        answer = Answerer(embedder, gen, top_k=2).answer("How do I copy a file?", index)
    index.close()
    assert not answer.abstained
    assert "copyfile()" in answer.answer
    assert [c.url for c in answer.citations] == ["https://docs.example/shutil.html"]
    assert answer.citation_recall == 1.0
    assert seen
    assert all(r["model"] == "loopback-model" and r["stream"] for r in seen)


def test_a_wrong_key_over_loopback_is_a_clear_error(
    openai_server: tuple[str, list[dict[str, Any]]],
) -> None:
    base_url, _ = openai_server
    with (
        OpenAICompatibleGenerator(base_url, "m", api_key="wrong", retries=0, timeout_s=5) as gen,
        pytest.raises(GenerationError, match="HTTP 401"),
    ):
        gen.generate(MESSAGES)
