"""The stdio transport: the SDK's stdio client against a subprocess running ``citeline mcp``'s server
(over the fakes), and the ``citeline mcp`` command itself."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters
from typer.testing import CliRunner

from citeline.service.cli import app
from tests.service.mcp.clients import text_of
from tests.service.mcp.fakes import URL

ROOT = Path(__file__).resolve().parents[3]


def params(data_dir: Path) -> StdioServerParameters:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "CITELINE_CONFIG": "/nonexistent"}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.service.mcp.stdio_fake_server", str(data_dir)],
        env=env,
        cwd=str(ROOT),
    )


async def test_stdio_client_calls_each_tool(tmp_path: Path) -> None:
    async with Client(params(tmp_path)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"search", "ask", "fetch_page", "ingest"}
        hits = await client.call_tool("search", {"query": "json.dump", "k": 3})
        assert not hits.is_error
        assert len(hits.structured_content["hits"]) == 3
        answer = await client.call_tool("ask", {"question": "How do I read a JSON file?"})
        assert not answer.is_error
        assert answer.structured_content["citations"][0]["url"] == URL
        page = await client.call_tool("fetch_page", {"url": URL})
        assert not page.is_error
        assert page.structured_content["url"] == URL
        refused = await client.call_tool("ingest", {"seeds": ["https://docs.example/"]})
        assert refused.is_error
        assert "--allow-ingest" in text_of(refused)
        bad = await client.call_tool("ask", {"question": ""})
        assert bad.is_error


def test_citeline_mcp_is_a_command() -> None:
    result = CliRunner().invoke(app, ["mcp", "--help"])
    assert result.exit_code == 0
    assert "--allow-ingest" in result.output
