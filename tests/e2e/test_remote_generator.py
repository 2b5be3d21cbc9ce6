"""The remote generator backend end to end: ``citeline serve`` configured for an OpenAI-compatible
server answers over HTTP with checked citations, while the model runs in another process behind a
loopback server that speaks the OpenAI streaming chat-completions API (as vLLM, OpenVINO Model
Server or llama.cpp's server would), here backed by the real int4 Qwen model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from citeline.service.generation import ChatMessage, Generator
from citeline.service.settings import ServiceSettings
from tests.conftest import StaticServer, citeline_env, live_service, run_citeline

pytestmark = pytest.mark.e2e

MODEL_NAME = "qwen-remote"


class _OpenAIServer(BaseHTTPRequestHandler):
    generator: Generator
    requests: list[dict[str, Any]]

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
            delta = {"content": content} if content is not None else {}
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"id": "remote", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": MODEL_NAME, "choices": [choice]}  # fmt: skip

        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        result = self.generator.generate(
            messages,
            max_new_tokens=int(body.get("max_tokens", 160)),
            on_text=lambda piece: event(chunk(piece)) or None,
        )
        event(chunk(None, "stop"))
        event({**chunk(None), "choices": [], "usage": {"prompt_tokens": result.prompt_tokens,
                                                        "completion_tokens": result.completion_tokens}})  # fmt: skip
        event("[DONE]")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def model_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    from citeline.service.generation import OpenVINOGenerator

    settings = ServiceSettings()
    requests: list[dict[str, Any]] = []
    handler = type("Handler", (_OpenAIServer,), {
        "generator": OpenVINOGenerator(settings.generator_dir(), cache_dir=settings.openvino_cache_dir()),
        "requests": requests,
    })  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()


def test_service_answers_with_citations_through_a_remote_model_server(
    python_docs: StaticServer, model_server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base_url, requests = model_server
    env = citeline_env(tmp_path)
    ingest = run_citeline(
        ["ingest", f"{python_docs.base_url}library/json.html", f"{python_docs.base_url}library/csv.html",
         "--max-depth", "0", "--index", "remote"],
        env,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    remote = {
        "CITELINE_GENERATOR_BACKEND": "openai",
        "CITELINE_GENERATOR_BASE_URL": base_url,
        "CITELINE_GENERATOR_API_MODEL": MODEL_NAME,
    }
    with live_service(tmp_path, "remote", **remote) as service:
        body = service.ask("Which function can deserialize a JSON document to a Python object?")
    assert requests, "the service never called the model server"
    assert requests[-1]["model"] == MODEL_NAME
    assert requests[-1]["stream"] is True
    assert body["abstained"] is False, body
    assert body["citations"], body
    assert all(c["url"].endswith("library/json.html") for c in body["citations"]), body["citations"]
    assert body["usage"]["prompt_tokens"] > 0
    assert "json.load" in body["answer"], body["answer"]  # json.load or json.loads: both deserialize
