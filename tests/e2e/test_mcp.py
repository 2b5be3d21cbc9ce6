"""The MCP server end to end: the real models over two ingested Python docs pages, through the
official SDK client, over streamable HTTP (``citeline serve``'s ``/mcp`` behind API keys) and over
stdio (``citeline mcp`` as the subprocess a desktop agent starts). One real answer per transport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import BIN, ROOT, LiveService, StaticServer, citeline_env, live_service, run_citeline
from tests.service.mcp.clients import http_client, text_of

pytestmark = pytest.mark.e2e

PUBLIC = "https://docs.python.org/3.11/"
PAGES = ["library/json.html", "library/csv.html"]
KEYS = json.dumps({"e2e-read": "read", "e2e-ingest": "ingest"})
QUESTION = "How do I read a JSON file in Python?"
# The worktree's code, not only what the virtualenv's editable install points at.
CODE = {"PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def data_dir(python_docs: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("mcp-data")
    seeds = [python_docs.base_url + page for page in PAGES]
    args = ["ingest", *seeds, "--max-depth", "0", "--index", "py", "--map-url", f"{python_docs.base_url}={PUBLIC}"]
    completed = run_citeline(args, citeline_env(data_dir, **CODE))
    assert completed.returncode == 0, completed.stderr[-3000:]
    return data_dir


@pytest.fixture(scope="module")
def service(data_dir: Path) -> Iterator[LiveService]:
    with live_service(data_dir, index="py", CITELINE_API_KEYS=KEYS, PYTHONPATH=str(ROOT)) as live:
        yield live


async def exercise(client: Client) -> dict[str, Any]:
    """List the tools and call search, ask and fetch_page as an agent would; return the answer."""
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert tools == {"search", "ask", "fetch_page", "ingest"}
    hits = await client.call_tool("search", {"query": "json.load read a file", "k": 3})
    assert not hits.is_error, hits.content
    assert any(hit["url"] == PUBLIC + "library/json.html" for hit in hits.structured_content["hits"])
    answer = await client.call_tool("ask", {"question": QUESTION})
    assert not answer.is_error, answer.content
    body: dict[str, Any] = answer.structured_content
    assert body["abstained"] is False, body["answer"]
    assert body["citations"], body
    citation = body["citations"][0]
    assert citation["supported"] is True
    assert citation["fragment_url"].startswith(citation["url"] + "#:~:text=")
    page = await client.call_tool("fetch_page", {"url": citation["url"], "max_chars": 100_000})
    assert not page.is_error, page.content
    text = page.structured_content["text"]
    assert text[citation["start"] : citation["end"]] == citation["quote"]
    bad = await client.call_tool("search", {"query": "json", "k": 0})
    assert bad.is_error
    unknown = await client.call_tool("ask", {"question": "json?", "index": "no-such-index"})
    assert unknown.is_error
    return body


async def test_streamable_http_with_api_keys(service: LiveService, python_docs: StaticServer) -> None:
    url = f"{service.base_url}/mcp"
    assert httpx.post(url, json={}, headers={"Accept": "application/json, text/event-stream"}).status_code == 401
    async with http_client(url, "e2e-read") as client:
        await exercise(client)
        refused = await client.call_tool("ingest", {"seeds": [python_docs.base_url + "library/csv.html"]})
        assert refused.is_error
        assert "scope" in text_of(refused)
    async with http_client(url, "e2e-ingest") as client:
        job = await client.call_tool(
            "ingest", {"seeds": [python_docs.base_url + "library/csv.html"], "index": "py2", "max_depth": 0}
        )
    assert not job.is_error, job.content
    assert job.structured_content["id"]


async def test_stdio_citeline_mcp(data_dir: Path) -> None:
    server = StdioServerParameters(
        command=str(BIN / "citeline"), args=["mcp"], env=citeline_env(data_dir, CITELINE_INDEX="py", **CODE)
    )
    async with Client(server, read_timeout_seconds=600) as client:
        await exercise(client)
        refused = await client.call_tool("ingest", {"seeds": [PUBLIC]})
        assert refused.is_error
        assert "--allow-ingest" in text_of(refused)
