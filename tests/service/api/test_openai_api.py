"""The OpenAI endpoints clients probe: the model list (one model per index), the model choosing the
index, and errors in OpenAI's shape on those routes only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import ValidationException
from litestar.testing import TestClient

from citeline.indexes import IndexNotFoundError
from citeline.service.api import create_app
from citeline.service.api.openai_chat import UnknownModelError, chosen_index
from citeline.service.api.problems import openai_error
from citeline.service.exceptions import BusyError, GenerationError, NotReadyError, RequestError
from citeline.service.generation import ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.api.test_chat_api import EMBEDDER, PAGE_TEXT, events, reply
from tests.service.helpers import one_page_index

OTHER_TEXT = "kettle — the kitchen kettle\nThe kettle switches off at ninety five degrees.\nDescale it monthly."
QUESTION = [{"role": "user", "content": "How do I read a JSON file?"}]


def make_client(tmp_path: Path, **settings: Any) -> TestClient:  # type: ignore[type-arg]
    one_page_index(tmp_path, EMBEDDER, PAGE_TEXT)
    one_page_index(tmp_path, EMBEDDER, OTHER_TEXT, name="kitchen", url="https://kitchen.example/kettle.html",
                   title="kettle")  # fmt: skip
    config = ServiceSettings(data_dir=tmp_path, index="docs", **({"top_k": 3} | settings))
    return TestClient(create_app(config, embedder=EMBEDDER, generator=ScriptedGenerator(reply)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with make_client(tmp_path) as test_client:
        yield test_client


def assert_openai_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_models_lists_one_model_per_index(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/models")
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["citeline/docs", "citeline/kitchen"]
    for model in listing["data"]:
        assert model["object"] == "model"
        assert model["owned_by"] == "citeline"
        assert isinstance(model["created"], int)
        assert model["created"] > 0


@pytest.mark.parametrize("path", ["/v1/models/citeline/kitchen", "/v1/models/citeline%2Fkitchen"])
def test_a_model_is_retrieved_by_its_id_slash_sent_as_is_or_encoded(client: TestClient, path: str) -> None:  # type: ignore[type-arg]
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "citeline/kitchen"
    assert response.json()["object"] == "model"


@pytest.mark.parametrize("model", ["citeline/nope", "gpt-4o", "citeline/", "citeline/../docs"])
def test_an_unknown_model_is_404_in_openai_shape(client: TestClient, model: str) -> None:  # type: ignore[type-arg]
    error = assert_openai_error(client.get(f"/v1/models/{model}"), 404, "model_not_found")
    assert error["param"] == "model"
    assert error["type"] == "invalid_request_error"


def test_the_model_chooses_the_index(client: TestClient) -> None:  # type: ignore[type-arg]
    chosen = client.post("/v1/chat/completions", json={"model": "citeline/kitchen", "messages": QUESTION})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["model"] == "citeline/kitchen"
    assert chosen.json()["citeline"]["index"] == "kitchen"
    default = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": QUESTION}).json()
    assert default["model"] == "citeline/docs", "a model that is not citeline/... leaves the default index"
    assert default["citeline"]["index"] == "docs"
    by_field = client.post("/v1/chat/completions", json={"index": "kitchen", "messages": QUESTION}).json()
    assert by_field["citeline"]["index"] == "kitchen"
    same = client.post("/v1/chat/completions", json={"model": "citeline/kitchen", "index": "kitchen",
                                                      "messages": QUESTION})  # fmt: skip
    assert same.status_code == 200


def test_streamed_chat_reports_the_chosen_model(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"model": "citeline/kitchen", "messages": QUESTION, "stream": True}
    data = [d for _, d in events(client.post("/v1/chat/completions", json=body).text)]
    assert data[-1] == "[DONE]"
    assert {json.loads(d)["model"] for d in data[:-1]} == {"citeline/kitchen"}


@pytest.mark.parametrize("stream", [False, True])
def test_chat_with_an_unknown_model_is_404_before_any_stream(client: TestClient, stream: bool) -> None:  # type: ignore[type-arg]
    body = {"model": "citeline/nope", "messages": QUESTION, "stream": stream}
    error = assert_openai_error(client.post("/v1/chat/completions", json=body), 404, "model_not_found")
    assert "'citeline/nope'" in error["message"]
    assert error["param"] == "model"


def test_chat_errors_are_in_openai_shape(client: TestClient) -> None:  # type: ignore[type-arg]
    conflict = client.post("/v1/chat/completions", json={"model": "citeline/kitchen", "index": "docs",
                                                          "messages": QUESTION})  # fmt: skip
    assert_openai_error(conflict, 422, "conflicting_index")
    unknown_index = client.post("/v1/chat/completions", json={"index": "nope", "messages": QUESTION})
    assert_openai_error(unknown_index, 404, "unknown_index")
    invalid = client.post("/v1/chat/completions", json={"messages": "not a list"})
    error = assert_openai_error(invalid, 400)
    assert error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    blank = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "  "}]})
    assert_openai_error(blank, 422, "empty_question")
    unanswerable = client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "Hi"}]})
    assert_openai_error(unanswerable, 422, "invalid_conversation")


def test_other_routes_keep_problem_details(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/v1/ask", json={"question": "q?", "index": "nope"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Unknown index"
    invalid = client.post("/v1/ask", json={"question": 3})
    assert invalid.status_code == 400
    assert invalid.headers["content-type"].startswith("application/problem+json")


def test_keys_and_rate_limits_answer_in_openai_shape(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys={"reader-key-1": "read"}, rate_limit_per_minute=2) as keyed:
        missing = keyed.get("/v1/models")
        assert_openai_error(missing, 401, "invalid_api_key")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = keyed.post("/v1/chat/completions", json={"messages": QUESTION},
                           headers={"Authorization": "Bearer wrong"})  # fmt: skip
        assert_openai_error(wrong, 401, "invalid_api_key")
        key = {"Authorization": "Bearer reader-key-1"}
        assert keyed.get("/v1/models", headers=key).status_code == 200
        assert keyed.get("/v1/models/citeline/docs", headers=key).status_code == 200
        limited = keyed.get("/v1/models", headers=key)
        error = assert_openai_error(limited, 429, "rate_limit_exceeded")
        assert error["type"] == "rate_limit_error"
        assert int(limited.headers["retry-after"]) >= 1


def test_openai_error_renders_the_one_problem_mapping() -> None:
    busy = openai_error(BusyError("the queue is full", retry_after=3))["error"]
    assert (busy["type"], busy["code"]) == ("server_error", "busy")
    not_ready = openai_error(NotReadyError("models are still loading"))["error"]
    assert (not_ready["type"], not_ready["message"]) == ("server_error", "models are still loading")
    assert openai_error(GenerationError("gone"))["error"]["code"] == "generation_failed"
    assert openai_error(IndexNotFoundError("x"))["error"]["code"] == "unknown_index"
    hidden = openai_error(RuntimeError("secret internals"))["error"]
    assert "secret" not in hidden["message"]
    assert (hidden["type"], hidden["code"]) == ("server_error", None)
    validation = openai_error(ValidationException("bad", extra=[{"message": "Expected int", "key": "top_k"}]))
    assert validation["error"]["param"] == "top_k"
    assert "Expected int" in validation["error"]["message"]


def test_chosen_index_checks_a_citeline_model_only() -> None:
    def names() -> list[str]:
        return ["docs", "kitchen"]

    assert chosen_index(None, None, names, "docs") == "docs"
    assert chosen_index("gpt-4o", "kitchen", names, "docs") == "kitchen"
    assert chosen_index("citeline/kitchen", None, names, "docs") == "kitchen"
    with pytest.raises(UnknownModelError):
        chosen_index("citeline/" + "x" * 10_000, None, names, "docs")
    with pytest.raises(RequestError, match="names index"):
        chosen_index("citeline/kitchen", "docs", names, "docs")
