from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from litestar.testing import TestClient

from citeline.indexes import HashEmbedder
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.api import create_app
from citeline.service.exceptions import GenerationError
from citeline.service.generation import ChatMessage, ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
PAGE_TEXT = (
    "json — JSON encoder and decoder\n"
    "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object.\n"
    "json.dump(obj, fp) serializes obj as a JSON formatted stream to fp."
)


def reply(messages: Sequence[ChatMessage]) -> str:
    if messages[0].content == JUDGE_SYSTEM:
        return "no"
    question = messages[-1].content.rsplit("Question:", 1)[-1]
    if "tungsten" in question:
        return "NOT FOUND"
    if "bogus" in question:
        return "Use json.load() to read a JSON document from a text file [9]."
    return "Use json.load() to read a JSON document from a text file [1]. It returns a Python object [1][5]."


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    one_page_index(tmp_path, EMBEDDER, PAGE_TEXT)
    settings = ServiceSettings(data_dir=tmp_path, index="docs", top_k=2, max_body_bytes=4000)
    app = create_app(settings, embedder=EMBEDDER, generator=ScriptedGenerator(reply))
    with TestClient(app) as test_client:
        yield test_client


def test_ask_returns_span_level_citations(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/v1/ask", json={"question": "How do I read a JSON file?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["abstained"] is False
    assert body["answer"] == "Use json.load() to read a JSON document from a text file. [1]"
    assert [s["citations"] for s in body["sentences"]] == [[1]]
    assert body["sentences"][0]["supported"] is True
    # The judge (scripted to say no) rejected the second sentence: strict policy removes it.
    assert body["removed_sentences"] == ["It returns a Python object."]
    assert body["policy"] == "strict"
    assert len(body["citations"]) == 1
    first = body["citations"][0]
    assert first["quote"].startswith("json.load(fp) deserializes fp")
    assert PAGE_TEXT[first["start"] : first["end"]] == first["quote"]
    assert first["fragment_url"].startswith("https://docs.example/json.html#:~:text=json.load(fp)")
    assert body["dropped_markers"] == [5]
    assert "[5]" not in body["answer"]
    assert set(body["timings"]) == {
        "retrieve_ms",
        "excerpt_ms",
        "generate_ms",
        "first_verified_sentence_ms",
        "verify_ms",
        "total_ms",
        "time_to_first_token_ms",
    }
    assert body["usage"]["judge_calls"] == 0, "the judge is off by default: the unsure sentence is dropped"


def test_flag_policy_keeps_and_marks_unsupported_sentences(client: TestClient) -> None:  # type: ignore[type-arg]
    body = client.post("/v1/ask", json={"question": "How do I read a JSON file?", "policy": "flag"}).json()
    assert [(s["text"], s["supported"]) for s in body["sentences"]] == [
        ("Use json.load() to read a JSON document from a text file.", True),
        ("It returns a Python object.", False),
    ]
    assert body["citation_recall"] == 0.5
    assert body["removed_sentences"] == []


def test_answer_with_only_invalid_markers_abstains(client: TestClient) -> None:  # type: ignore[type-arg]
    body = client.post("/v1/ask", json={"question": "bogus question about json"}).json()
    assert body["abstained"] is True
    assert body["citations"] == []
    assert body["dropped_markers"] == [9]


def test_not_found_abstains(client: TestClient) -> None:  # type: ignore[type-arg]
    body = client.post("/v1/ask", json={"question": "What is the boiling point of tungsten?"}).json()
    assert body["abstained"] is True
    assert body["answer"] == "The sources do not answer this question."
    assert body["see_also"][0]["url"] == "https://docs.example/json.html"
    assert body["see_also"][0]["fragment_url"].startswith("https://docs.example/json.html#:~:text=")


@pytest.mark.parametrize(
    ("payload", "status", "title"),
    [
        ({"question": "   "}, 422, "Empty question"),
        ({"question": "x" * 2001}, 422, "Question too long"),
        ({"question": "x" * 5000}, 413, None),
        ({"question": "json?", "index": "nope"}, 404, "Unknown index"),
        ({"question": "json?", "index": "../x"}, 422, "Invalid index name"),
        ({"question": "json?", "top_k": 0}, 400, None),
        ({"question": 3}, 400, None),
        ({"nothing": 1}, 400, None),
    ],
)
def test_bad_requests_get_problem_details(
    client: TestClient,  # type: ignore[type-arg]
    payload: dict[str, object],
    status: int,
    title: str | None,
) -> None:
    response = client.post("/v1/ask", json=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if title:
        assert response.json()["title"] == title


def test_search_health_ready_and_schema(client: TestClient) -> None:  # type: ignore[type-arg]
    hits = client.get("/v1/search", params={"q": "json.dump serializes", "k": 2}).json()["hits"]
    assert hits[0]["text"].startswith("json.dump(obj, fp)")
    assert client.get("/v1/search", params={"q": ""}).status_code == 400
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["indexes"] == ["docs"]
    schema = client.get("/schema/openapi.json").json()
    assert {"/v1/ask", "/v1/search", "/healthz", "/readyz"} <= set(schema["paths"])


def test_not_ready_without_the_default_index(tmp_path: Path) -> None:
    settings = ServiceSettings(data_dir=tmp_path, index="missing")
    app = create_app(settings, embedder=EMBEDDER, generator=ScriptedGenerator("NOT FOUND"))
    with TestClient(app) as test_client:
        response = test_client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "no-index"
        assert response.headers["retry-after"] == "30"
        assert test_client.get("/healthz").status_code == 200


def sse_events(text: str) -> list[tuple[str, str]]:
    """``(event name, data)`` of each server-sent event ("message" when unnamed), comments skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


def failing(exc: Exception) -> ScriptedGenerator:
    def script(_: Sequence[ChatMessage]) -> str:
        raise exc

    return ScriptedGenerator(script)


@pytest.mark.parametrize(
    ("exc", "status", "title"),
    [
        (GenerationError("the model server went away"), 503, "Generation failed"),
        (RuntimeError("an unexpected bug"), 500, "Internal error"),
    ],
)
def test_a_failing_stream_ends_with_a_problem_details_event(
    tmp_path: Path, exc: Exception, status: int, title: str
) -> None:
    """Before, the exception escaped the event stream: a cut connection and a traceback in the log."""
    one_page_index(tmp_path, EMBEDDER, PAGE_TEXT)
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=2), embedder=EMBEDDER,
                     generator=failing(exc))  # fmt: skip
    with TestClient(app) as client:
        plain = client.post("/v1/ask", json={"question": "How do I read a JSON file?"})
        assert plain.status_code == status
        streamed = client.post("/v1/ask", json={"question": "How do I read a JSON file?", "stream": True})
        assert streamed.status_code == 200
        events = sse_events(streamed.text)
        assert [name for name, _ in events] == ["retrieval", "error"]
        problem = json.loads(events[-1][1])
        assert (problem["status"], problem["title"]) == (status, title)
        if status == 500:
            assert "unexpected bug" not in problem["detail"]  # internals stay in the log
        else:
            assert plain.json()["title"] == title
        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Read JSON?"}], "stream": True}
        )
        assert chat.status_code == 200
        chunks = [data for _, data in sse_events(chat.text)]
        assert chunks[-1] == "[DONE]"
        error = json.loads(chunks[-2])
        assert (error["status"], error["title"]) == (status, title)
        assert error["error"]["type"] == "server_error"
        assert error["error"]["code"] == ("generation_failed" if status == 503 else None)
        assert set(error["error"]) == {"message", "type", "code", "param"}
