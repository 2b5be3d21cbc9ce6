"""The ``/mcp`` endpoint of the service, over a real uvicorn server: the SDK's streamable-HTTP client,
the service's API keys and scopes, and its generation gate."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citeline.service.api import create_app
from tests.service.mcp.clients import http_client, text_of, uvicorn_server
from tests.service.mcp.fakes import EMBEDDER, URL, generator, settings_for

KEYS = {"read-key": "read", "ingest-key": "ingest"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def serve(data_dir: Path, **settings: object) -> Iterator[str]:
    app = create_app(
        settings_for(data_dir, **settings),
        embedder=EMBEDDER,
        generator=generator(),
        job_command=[sys.executable, "-c", "pass"],
    )
    with uvicorn_server(app) as base_url:
        yield base_url


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path, api_keys=KEYS, allow_hosts=["127.0.0.1"])


@pytest.fixture
def open_service(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path)


async def test_read_key_lists_and_calls_tools(keyed: str) -> None:
    async with http_client(f"{keyed}/mcp", "read-key") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"search", "ask", "fetch_page", "ingest"}
        hits = await client.call_tool("search", {"query": "read JSON", "k": 1})
        assert not hits.is_error
        assert hits.structured_content["hits"][0]["url"] == URL
        answer = await client.call_tool("ask", {"question": "How do I read a JSON file?"})
        assert not answer.is_error
        assert answer.structured_content["citations"][0]["supported"] is True
        page = await client.call_tool("fetch_page", {"url": URL})
        assert page.structured_content["title"] == "json"
        bad = await client.call_tool("search", {"query": "json", "k": 500})
        assert bad.is_error


async def test_ingest_needs_the_ingest_scope(keyed: str) -> None:
    arguments = {"seeds": ["http://127.0.0.1:9/docs/"], "max_pages": 1}
    async with http_client(f"{keyed}/mcp", "read-key") as client:
        refused = await client.call_tool("ingest", arguments)
    assert refused.is_error
    assert "'read' scope" in text_of(refused)
    async with http_client(f"{keyed}/mcp", "ingest-key") as client:
        started = await client.call_tool("ingest", arguments)
    assert not started.is_error, started.content
    assert started.structured_content["id"]
    assert started.structured_content["state"] in {"running", "succeeded", "failed"}


async def test_ingest_refuses_a_bad_seed_as_a_tool_error(keyed: str) -> None:
    async with http_client(f"{keyed}/mcp", "ingest-key") as client:
        result = await client.call_tool("ingest", {"seeds": ["file:///etc/passwd"]})
    assert result.is_error


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("wrong", 401)])
def test_the_endpoint_needs_a_key(keyed: str, key: str | None, status: int) -> None:
    headers = {**ACCEPT, **({"Authorization": f"Bearer {key}"} if key else {})}
    response = httpx.post(f"{keyed}/mcp", json=INIT, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_rate_limit_applies(tmp_path: Path) -> None:
    for base_url in serve(tmp_path, api_keys=KEYS, rate_limit_per_minute=2):
        headers = {**ACCEPT, "Authorization": "Bearer read-key"}
        codes = [httpx.post(f"{base_url}/mcp", json=INIT, headers=headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


async def test_open_service_answers_loopback_and_refuses_rebound_hosts(open_service: str) -> None:
    async with http_client(f"{open_service}/mcp") as client:
        assert not (await client.call_tool("search", {"query": "json"})).is_error
    rebound = httpx.post(f"{open_service}/mcp", json=INIT, headers={**ACCEPT, "Host": "evil.example"})
    assert rebound.status_code in {400, 403, 421}
