"""The MCP tools in-process: schemas an agent can read, results, and every bad argument an isError result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from citeline.service.mcp.tools import ToolContext, build_server
from tests.service.mcp.clients import text_of
from tests.service.mcp.fakes import PAGE_TEXT, URL, ready_resources, settings_for


@pytest.fixture
def server(tmp_path: Path) -> Any:
    resources = ready_resources(settings_for(tmp_path, max_question_chars=200))
    return build_server(ToolContext(resources, transport="stdio"))


async def call(server: Any, name: str, arguments: dict[str, Any]) -> Any:
    async with Client(server) as client:
        return await client.call_tool(name, arguments)


async def test_tools_are_listed_with_bounded_schemas(server: Any) -> None:
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"search", "ask", "fetch_page", "ingest"}
    for tool in tools.values():
        assert len(tool.description or "") > 80, tool.name
    k = tools["search"].input_schema["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 50)
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["ask"].input_schema["properties"]["question"]["maxLength"] == 200
    assert "ctx" not in tools["ingest"].input_schema["properties"]
    assert tools["ask"].annotations is not None
    assert tools["ask"].annotations.read_only_hint


async def test_search_returns_passages_with_offsets(server: Any) -> None:
    result = await call(server, "search", {"query": "read a JSON file", "k": 2})
    assert not result.is_error, result.content
    body = result.structured_content
    assert body["index"] == "docs"
    assert len(body["hits"]) == 2
    for hit in body["hits"]:
        assert hit["url"] == URL
        assert hit["title"] == "json"
        assert PAGE_TEXT[hit["start"] : hit["end"]] == hit["text"]


async def test_ask_returns_checked_citations(server: Any) -> None:
    result = await call(server, "ask", {"question": "How do I read a JSON file?"})
    assert not result.is_error, result.content
    body = result.structured_content
    assert body["abstained"] is False
    assert body["answer"].startswith("Use json.load()")
    citation = body["citations"][0]
    assert citation["url"] == URL
    assert citation["supported"] is True
    assert PAGE_TEXT[citation["start"] : citation["end"]] == citation["quote"]
    assert citation["fragment_url"].startswith(URL + "#:~:text=")
    again = await call(server, "ask", {"question": "How do I read a JSON file?"})
    assert again.structured_content["cached"] is True


async def test_fetch_page_returns_text_and_provenance_in_slices(server: Any) -> None:
    whole = (await call(server, "fetch_page", {"url": URL})).structured_content
    assert whole["text"] == PAGE_TEXT
    assert whole["title"] == "json"
    assert whole["next_offset"] is None
    assert whole["content_hash"] == "h"
    first = (await call(server, "fetch_page", {"url": URL, "max_chars": 10})).structured_content
    assert first["text"] == PAGE_TEXT[:10]
    assert first["next_offset"] == 10
    rest = (await call(server, "fetch_page", {"url": URL, "offset": 10})).structured_content
    assert first["text"] + rest["text"] == PAGE_TEXT


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("search", {"query": "json", "k": 0}, "k"),
        ("search", {"query": "json", "k": 51}, "k"),
        ("search", {"query": "   "}, "blank"),
        ("search", {"query": "json", "index": "../etc"}, "index"),
        ("search", {"query": "json", "index": "nosuch"}, "nosuch"),
        ("search", {}, "query"),
        ("ask", {"question": "x" * 201}, "question"),
        ("ask", {"question": "json?", "policy": "lenient"}, "policy"),
        ("ask", {"question": "json?", "top_k": 11}, "top_k"),
        ("fetch_page", {"url": "https://docs.example/missing.html"}, "no stored page"),
        ("fetch_page", {"url": URL, "max_chars": 0}, "max_chars"),
        ("ingest", {"seeds": ["https://docs.example/"]}, "--allow-ingest"),
        ("no_such_tool", {}, "no_such_tool"),
    ],
)
async def test_a_bad_argument_is_a_tool_error(server: Any, name: str, arguments: dict[str, Any], says: str) -> None:
    result = await call(server, name, arguments)
    assert result.is_error
    assert says in text_of(result)


async def test_a_tool_waits_for_models_still_loading(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    loaded = ready_resources(settings)
    from citeline.service.api.resources import Resources

    loading = Resources(settings=settings)
    server = build_server(ToolContext(loading, transport="stdio", ready_wait_s=0.5))
    result = await call(server, "search", {"query": "json"})
    assert result.is_error
    assert "loading" in text_of(result)
    loading.registry, loading.answerer = loaded.registry, loaded.answerer
    assert not (await call(server, "search", {"query": "json"})).is_error
