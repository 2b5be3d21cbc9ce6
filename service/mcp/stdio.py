"""``citeline mcp``: the MCP server over stdio, for desktop agents and IDEs that start it themselves.

The process answers the client's handshake at once and loads the models in a thread meanwhile (as
``citeline serve`` does); a tool called before they are loaded waits for them. stdout carries the
protocol alone: the SDK points file descriptor 1 at stderr while it serves, and logs go to stderr.

Ingest is off unless the command is given ``--allow-ingest``: stdio has no API key to hold an
``ingest`` scope, and whoever starts the process chooses, once, whether its agent may crawl.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from mcp.server.mcpserver import MCPServer

from citeline.service.api.resources import Resources, load_resources
from citeline.service.mcp.tools import ToolContext, build_server
from citeline.service.settings import ServiceSettings

READY_WAIT_S = 600.0
"""How long a tool call waits for the models (the first start can build the FAISS indexes)."""


def stdio_server(
    settings: ServiceSettings, *, allow_ingest: bool = False, resources: Resources | None = None
) -> MCPServer[Any]:
    """The stdio server. With ``resources`` given ready (tests), nothing is loaded."""
    resources = resources or Resources(settings=settings)
    jobs = None
    if allow_ingest:
        from citeline.service.api.ingest_jobs import citeline_command
        from citeline.service.operations import JobManager

        jobs = JobManager(
            settings.data_dir,
            command=citeline_command(),
            allow_hosts=settings.allow_hosts,
            url_maps=settings.ingest_url_maps,
        )

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        if not resources.ready:
            threading.Thread(target=load_resources, args=(resources,), name="citeline-loader", daemon=True).start()
        try:
            yield
        finally:
            if resources.registry is not None:
                resources.registry.close()

    context = ToolContext(resources, transport="stdio", allow_ingest=allow_ingest, jobs=jobs, ready_wait_s=READY_WAIT_S)
    return build_server(context, lifespan=lifespan)


def logs_to_stderr() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
