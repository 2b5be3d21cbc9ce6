"""OpenAI-compatible chat, SSE streaming, API keys, rate limits, the generation queue and /metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from citeline.indexes import HashEmbedder
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.api import create_app
from citeline.service.api.auth import AccessControl
from citeline.service.api.gate import GenerationGate
from citeline.service.api.openai_chat import REWRITE_SYSTEM
from citeline.service.exceptions import AccessError, BusyError, RateLimitedError
from citeline.service.generation import ChatMessage, ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
PAGE_TEXT = (
    "json — JSON encoder and decoder\n"
    "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object.\n"
    "json.dump(obj, fp) serializes obj as a JSON formatted stream to fp."
)
ANSWER = "Use json.load() to read a JSON document from a text file [1]."
VERBATIM = "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object"
VERBATIM_DUMP = "json.dump(obj, fp) serializes obj as a JSON formatted stream to fp"


def reply(messages: Sequence[ChatMessage]) -> str:
    if messages[0].content == JUDGE_SYSTEM:
        return "yes"
    if messages[0].content == REWRITE_SYSTEM:
        return "How do I write a JSON document back to a file?"
    if "write" in messages[-1].content.rsplit("Question:", 1)[-1]:
        return "json.dump(obj, fp) serializes obj as a JSON formatted stream to fp [1]."
    if "deserializes" in messages[-1].content.rsplit("Question:", 1)[-1]:
        # Both cite the json.load passage: the second is right only once repointed to json.dump's.
        n = next(
            m.group(1)
            for m in re.finditer(r"\[(\d+)\] [^\n]*\n([^\n]*)", messages[-1].content)
            if "json.load" in m.group(2)
        )
        return f"{VERBATIM} [{n}]. {VERBATIM_DUMP} [{n}]."
    return ANSWER


def make_client(tmp_path: Path, **settings: Any) -> TestClient:  # type: ignore[type-arg]
    one_page_index(tmp_path, EMBEDDER, PAGE_TEXT)
    config = ServiceSettings(data_dir=tmp_path, index="docs", **({"top_k": 3} | settings))
    return TestClient(create_app(config, embedder=EMBEDDER, generator=ScriptedGenerator(reply)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with make_client(tmp_path) as test_client:
        yield test_client


def events(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE body; comments are skipped."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((event, "\n".join(data)))
    return out


def test_chat_completion_carries_url_citation_annotations(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"model": "citeline", "messages": [{"role": "user", "content": "How do I read a JSON file?"}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["object"] == "chat.completion"
    message = completion["choices"][0]["message"]
    assert message["role"] == "assistant"
    annotation = message["annotations"][0]
    assert annotation["type"] == "url_citation"
    cited = annotation["url_citation"]
    assert cited["url"].startswith("https://docs.example/json.html#:~:text=")
    assert message["content"][cited["start_index"] : cited["end_index"]] == (
        "Use json.load() to read a JSON document from a text file."
    )
    assert completion["citeline"]["standalone_question"] == "How do I read a JSON file?"
    assert completion["citeline"]["citations"][0]["quote"].startswith("json.load(fp)")
    assert completion["usage"]["total_tokens"] > 0


def test_follow_up_is_rewritten_into_a_standalone_question(client: TestClient) -> None:  # type: ignore[type-arg]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I read a JSON file?"},
        {"role": "assistant", "content": "Use json.load() [1]."},
        {"role": "user", "content": "and how do I do the opposite?"},
    ]
    completion = client.post("/v1/chat/completions", json={"messages": messages}).json()
    assert completion["citeline"]["standalone_question"] == "How do I write a JSON document back to a file?"
    assert "json.dump" in completion["choices"][0]["message"]["content"]


def test_streamed_chat_ends_with_done_and_carries_annotations(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"messages": [{"role": "user", "content": "How do I read a JSON file?"}], "stream": True}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [d for _, d in events(response.text)]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content.startswith("Use json.load()")
    final = chunks[-1]["choices"][0]
    assert final["finish_reason"] == "stop"
    assert final["delta"]["annotations"][0]["type"] == "url_citation"


def test_streamed_ask_sends_retrieval_drafts_then_the_verified_answer(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/v1/ask", json={"question": "How do I read a JSON file?", "stream": True})
    assert response.status_code == 200
    kinds = [event for event, _ in events(response.text)]
    assert kinds[0] == "retrieval"
    assert kinds[-1] == "answer"
    assert "draft" in kinds
    answer = json.loads(events(response.text)[-1][1])
    assert answer["citations"][0]["url"] == "https://docs.example/json.html"


def test_streamed_ask_sends_each_verified_sentence_before_the_answer(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/v1/ask", json={"question": "What deserializes and serializes a JSON document?", "stream": True}
    )
    received = events(response.text)
    kinds = [event for event, _ in received]
    assert kinds.index("sentence") < kinds.index("answer")
    assert "draft" in kinds[kinds.index("sentence") + 1 :], "the first sentence came while the answer was written"
    sentences = [json.loads(data) for event, data in received if event == "sentence"]
    answer = json.loads(received[-1][1])
    # The second sentence cites a passage that does not hold it: it is supported only once the final
    # check repoints it to the passage that does, so it comes with the answer, not before.
    assert [s["sentence"]["text"] for s in sentences] == [VERBATIM + "."]
    assert [s["text"] for s in answer["sentences"]] == [VERBATIM + ".", VERBATIM_DUMP + "."]
    assert answer["sentences"][1]["repointed"]
    assert sentences[0]["position"] == 0
    assert sentences[0]["sentence"] == answer["sentences"][0]
    assert sentences[0]["citations"] == [
        c for c in answer["citations"] if c["id"] in answer["sentences"][0]["citations"]
    ]
    assert answer["timings"]["first_verified_sentence_ms"] == sentences[0]["elapsed_ms"]


def test_streamed_chat_sends_verified_sentences_first_and_the_same_content_in_the_end(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    question = {"role": "user", "content": "What deserializes and serializes a JSON document?"}
    plain = client.post("/v1/chat/completions", json={"messages": [question]}).json()
    response = client.post("/v1/chat/completions", json={"messages": [question], "stream": True})
    data = [d for event, d in events(response.text) if event == "message"]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": f"{VERBATIM}. [1]"}, "the verified first sentence, whole, as one piece"
    assert sum("role" in d for d in deltas) == 1
    content = "".join(d.get("content") or "" for d in deltas)
    assert content == plain["choices"][0]["message"]["content"]
    assert deltas[-1]["annotations"] == plain["choices"][0]["message"]["annotations"]


def test_api_keys_scopes_and_rate_limits(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys={"reader-key-1": "read"}, rate_limit_per_minute=2) as keyed:
        assert keyed.get("/v1/search", params={"q": "json"}).status_code == 401
        assert keyed.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": "wrong"}).status_code == 401
        ok = keyed.get("/v1/search", params={"q": "json"}, headers={"Authorization": "Bearer reader-key-1"})
        assert ok.status_code == 200
        assert keyed.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": "reader-key-1"}).status_code == 200
        limited = keyed.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": "reader-key-1"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert keyed.get("/healthz").status_code == 200, "liveness needs no key"


def test_access_control_scopes_and_refill() -> None:
    now = [0.0]
    access = AccessControl({"r": "read", "i": "ingest"}, rate_per_minute=1, clock=lambda: now[0])
    with pytest.raises(AccessError) as forbidden:
        access.authenticate({"x-api-key": "r"}, "c", "ingest")
    assert forbidden.value.status == 403
    assert access.authenticate({"x-api-key": "i"}, "c", "read").startswith("key:")
    with pytest.raises(RateLimitedError) as limited:
        access.authenticate({"x-api-key": "i"}, "c", "read")
    assert limited.value.retry_after == 60
    now[0] = 60.0
    access.authenticate({"x-api-key": "i"}, "c", "read")
    with pytest.raises(ValueError, match="scope"):
        AccessControl({"k": "admin"})


async def test_generation_gate_bounds_its_queue() -> None:
    gate = GenerationGate(max_waiting=1)
    gate.record(4.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.turn():
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    second = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    with pytest.raises(BusyError) as busy:
        async with gate.turn():
            pass
    assert busy.value.retry_after == 8, "two generations of ~4 s stand before it"
    release.set()
    await asyncio.gather(first, second)
    assert gate.waiting == 0
    assert not gate.busy


def test_metrics_expose_request_and_stage_figures(client: TestClient) -> None:  # type: ignore[type-arg]
    client.post("/v1/ask", json={"question": "How do I read a JSON file?"})
    text = client.get("/metrics").text
    assert "citeline_stage_seconds_bucket" in text
    assert 'stage="generate"' in text
    assert "citeline_generation_queue_depth" in text
    assert "citeline_requests_total" in text or "citeline_request_duration_seconds" in text


def test_every_response_carries_a_request_id(client: TestClient) -> None:  # type: ignore[type-arg]
    fresh = client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"] != "bad id!"


def test_docs_and_ui_load_nothing_from_the_internet(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/schema/swagger", "/"):
        page = client.get(path)
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
        assert all(not a.startswith(("http:", "https:", "//")) for a in assets), assets
        for asset in assets:
            if asset.startswith("/static/"):
                assert client.get(asset).status_code == 200, asset
    assert client.get("/schema/openapi.json").json()["paths"]["/v1/chat/completions"]


def test_keep_alive_comments_carry_no_data_line() -> None:
    from litestar.response import ServerSentEventMessage

    assert ServerSentEventMessage(comment="keep-alive", data=None).encode() == b": keep-alive\r\n\r\n"


def test_cors_is_off_by_default_and_configurable(tmp_path: Path, client: TestClient) -> None:  # type: ignore[type-arg]
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/ask", headers=preflight).headers
    with make_client(tmp_path / "cors", cors_origins=["https://chat.example"]) as cors:
        allowed = cors.options("/v1/ask", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://chat.example"


def test_index_size_is_exported(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/readyz").status_code == 200
    assert 'citeline_index_passages{index="docs"} 3.0' in client.get("/metrics").text
