"""API keys: any header bytes are a 401 at worst, buckets are per key and bounded, keys stay secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from structlog.testing import capture_logs

from citeline.indexes import HashEmbedder
from citeline.service.api import create_app
from citeline.service.api.auth import AccessControl
from citeline.service.exceptions import AccessError, RateLimitedError
from citeline.service.generation import ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
READ_KEY = "q7Zr-reader-key-01"
SIBLING_KEY = "q7Zr-reader-key-02"  # the same first 16 characters
INGEST_KEY = "x9Wp-ingest-key-01"


def make_client(tmp_path: Path, **settings: Any) -> TestClient:  # type: ignore[type-arg]
    one_page_index(tmp_path, EMBEDDER, "json.load reads JSON from a file.")
    config = ServiceSettings(data_dir=tmp_path, index="docs", **settings)
    return TestClient(create_app(config, embedder=EMBEDDER, generator=ScriptedGenerator("x")))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    keys = {READ_KEY: "read", SIBLING_KEY: "read", INGEST_KEY: "ingest"}
    with make_client(tmp_path, api_keys=keys, rate_limit_per_minute=1) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "headers",
    [
        {b"X-API-Key": "ключ".encode()},
        {b"Authorization": "Bearer ключ".encode()},
        {b"X-API-Key": b"\xff\xfe\x80"},
        {b"Authorization": b"Bearer " + READ_KEY.encode() + b"\xe9"},
        {b"X-API-Key": "é".encode("latin-1")},
    ],
)
def test_non_ascii_keys_are_unknown_keys_not_errors(client: TestClient, headers: dict[bytes, bytes]) -> None:  # type: ignore[type-arg]
    response = client.get("/v1/search", params={"q": "json"}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"


def test_non_ascii_text_never_raises() -> None:
    access = AccessControl({"ключ": "read"})
    with pytest.raises(AccessError) as refused:
        access.authenticate({"x-api-key": "ключ-не-тот"}, "c", "read")
    assert refused.value.status == 401
    with pytest.raises(AccessError):
        access.authenticate({"x-api-key": "\ud800"}, "c", "read")  # a lone surrogate
    assert access.authenticate({"x-api-key": "ключ".encode().decode("latin-1")}, "c", "read").startswith("key:")


def test_rate_limits_are_per_key_not_per_key_prefix(client: TestClient) -> None:  # type: ignore[type-arg]
    first = client.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": READ_KEY})
    assert first.status_code == 200, first.text
    assert client.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": READ_KEY}).status_code == 429
    sibling = client.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": SIBLING_KEY})
    assert sibling.status_code == 200, "another key sharing a prefix has its own bucket"


def test_rate_limit_buckets_are_bounded() -> None:
    now = [0.0]
    access = AccessControl({}, rate_per_minute=1, clock=lambda: now[0], max_buckets=100)
    for n in range(10_000):
        access.authenticate({}, f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", "read")
    assert len(access._buckets) <= 100
    # The most recent callers are the ones still counted.
    with pytest.raises(RateLimitedError):
        access.authenticate({}, "10.0.39.15", "read")  # n = 9999


def test_keys_stay_out_of_reprs_logs_and_error_bodies(client: TestClient, tmp_path: Path) -> None:  # type: ignore[type-arg]
    settings = ServiceSettings(data_dir=tmp_path, api_keys={READ_KEY: "read", INGEST_KEY: "ingest"})
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(AccessControl(settings.api_keys))]
    with pytest.raises(ValueError, match="scope") as bad_scope:
        AccessControl({READ_KEY: "admin"})
    shown.append(str(bad_scope.value))
    with capture_logs() as logs:
        wrong = client.get("/v1/search", params={"q": "json"}, headers={"X-API-Key": READ_KEY + "x"})
        forbidden = client.post("/v1/ingest", json={}, headers={"X-API-Key": READ_KEY})
        allowed = client.get("/v1/search", params={"q": "json"}, headers={"Authorization": f"Bearer {INGEST_KEY}"})
    assert (wrong.status_code, forbidden.status_code, allowed.status_code) == (401, 403, 200)
    shown += [wrong.text, forbidden.text, str(logs)]
    for text in shown:
        for key in (READ_KEY, INGEST_KEY):
            assert key[:4] not in text, text


def test_api_keys_from_the_environment_are_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITELINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CITELINE_API_KEYS", f'{{"{READ_KEY}": "read"}}')
    settings = ServiceSettings(data_dir=tmp_path)
    assert READ_KEY not in repr(settings)
    access = AccessControl(settings.api_keys)
    assert access.authenticate({"authorization": f"Bearer {READ_KEY}"}, "c", "read").startswith("key:")
