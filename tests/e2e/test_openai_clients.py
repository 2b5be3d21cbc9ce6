"""The official ``openai`` client against ``citeline serve`` on loopback, with the real models: the
model list (one model per index), chat choosing the index by model, plain and streamed, and the
errors the SDK turns into its own exception classes, as against OpenAI's API."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import LiveService, StaticServer, citeline_env, live_service, run_citeline

pytestmark = pytest.mark.e2e

KEY = "sk-citeline-e2e-reader"


@pytest.fixture(scope="module")
def service(python_docs: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """Two one-page indexes, ``json`` (the default) and ``csv``, served with an API key."""
    data_dir = tmp_path_factory.mktemp("openai-clients")
    for index in ("json", "csv"):
        ingest = run_citeline(
            ["ingest", f"{python_docs.base_url}library/{index}.html", "--max-depth", "0", "--index", index],
            citeline_env(data_dir),
        )
        assert ingest.returncode == 0, ingest.stderr[-2000:]
    with live_service(data_dir, "json", CITELINE_API_KEYS=f'{{"{KEY}": "read"}}') as running:
        yield running


def client(service: LiveService, key: str = KEY) -> openai.OpenAI:
    # No retries: a refused request must surface at once, as the exception the SDK maps its status to.
    return openai.OpenAI(base_url=f"{service.base_url}/v1", api_key=key, max_retries=0, timeout=180)


def test_models_are_listed_and_retrieved(service: LiveService) -> None:
    models = client(service).models.list()
    assert [m.id for m in models.data] == ["citeline/csv", "citeline/json"]
    assert all(m.object == "model" and m.owned_by == "citeline" and m.created > 0 for m in models.data)
    model = client(service).models.retrieve("citeline/csv")
    assert (model.id, model.object) == ("citeline/csv", "model")


def test_chat_answers_from_the_index_the_model_names(service: LiveService) -> None:
    completion = client(service).chat.completions.create(
        model="citeline/csv",
        messages=[{"role": "user", "content": "Which function returns a reader object for a CSV file?"}],
    )
    assert completion.model == "citeline/csv"
    message = completion.choices[0].message
    assert "csv.reader" in (message.content or ""), message.content
    assert message.annotations, "the answer cites its sources"
    for annotation in message.annotations:
        assert annotation.type == "url_citation"
        assert "library/csv.html#:~:text=" in annotation.url_citation.url
        cited = (message.content or "")[annotation.url_citation.start_index : annotation.url_citation.end_index]
        assert cited.strip()


def test_streamed_chat_answers_from_the_index_the_model_names(service: LiveService) -> None:
    stream = client(service).chat.completions.create(
        model="citeline/json",
        messages=[{"role": "user", "content": "Which function can deserialize a JSON document to a Python object?"}],
        stream=True,
    )
    chunks = list(stream)
    assert chunks
    assert {c.model for c in chunks} == {"citeline/json"}
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "json.load" in content, content  # json.load or json.loads: both deserialize
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_an_unknown_model_raises_not_found(service: LiveService) -> None:
    with pytest.raises(openai.NotFoundError) as retrieved:
        client(service).models.retrieve("citeline/nope")
    assert retrieved.value.code == "model_not_found"
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as chat:
            client(service).chat.completions.create(
                model="citeline/nope", messages=[{"role": "user", "content": "What is JSON?"}], stream=stream
            )
        assert chat.value.status_code == 404
        assert chat.value.param == "model"


def test_a_missing_or_wrong_key_raises_authentication_error(service: LiveService) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        client(service, "sk-wrong").models.list()
    assert wrong.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client(service, "sk-wrong").chat.completions.create(
            model="citeline/json", messages=[{"role": "user", "content": "What is JSON?"}], stream=True
        )
    with pytest.raises(openai.AuthenticationError):
        client(service).models.list(extra_headers={"Authorization": openai.omit})
