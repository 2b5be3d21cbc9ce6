"""``citeline mcp``: the MCP server over stdio."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from citeline.service.cli._common import app


@app.command()
def mcp(
    allow_ingest: Annotated[
        bool, typer.Option("--allow-ingest", help="Let the agent start ingest jobs (crawls); off by default.")
    ] = False,
) -> None:
    """Serve the MCP tools (search, ask, fetch_page, ingest) over stdio, for agents and IDEs.

    Settings come from the environment and config file, as for `citeline serve`; over HTTP the same
    tools are at /mcp of `citeline serve`."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from citeline.service.mcp.stdio import logs_to_stderr, stdio_server
    from citeline.service.settings import ServiceSettings

    logs_to_stderr()
    stdio_server(ServiceSettings(), allow_ingest=allow_ingest).run("stdio")
