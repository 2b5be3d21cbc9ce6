"""The MCP streamable-HTTP endpoint, mounted on the service at ``/mcp``.

It sits behind the same guard as every ``read`` route (API key and rate limit, answered as the same
401/403/429 problem details), so an MCP client holds the same key as an HTTP one; the ``ingest``
tool checks the ``ingest`` scope on its own call. Tools use the service's resources: the loaded
models, the index registry, the answer cache and the one-at-a-time generation gate.

Stateless (a fresh transport per POST, JSON responses): no MCP session is kept between requests,
so nothing grows with clients and any worker can answer any request. The SDK's DNS-rebinding
check (Host and Origin must be loopback) is on while the service is open (no API keys): then any
web page's script could reach it through a rebound name. With keys, a page has no key to send, and
the service may be reached under any host name (a proxy, a container's address).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from citeline.service.api.resources import Resources, requires
from citeline.service.mcp.tools import ToolContext, build_server

PATH = "/mcp"


class McpMount:
    """The endpoint's session manager, made anew each time the service starts (the SDK runs one at
    most once)."""

    def __init__(self) -> None:
        self.manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self, resources: Resources) -> AsyncIterator[None]:
        settings = resources.settings
        server = build_server(ToolContext(resources, transport="http"))
        if resources.access.open:
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        else:
            security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            max_request_body_size=settings.max_body_bytes,
            transport_security=security,
        )
        manager = server.session_manager
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    def handler(self) -> ASGIRouteHandler:
        mount = self

        @asgi(PATH, is_mount=True, copy_scope=True, guards=[requires("read")], include_in_schema=False)
        async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            manager = mount.manager
            if manager is None:
                await _respond(send, 503, b'{"title": "Not ready", "detail": "the MCP endpoint is starting"}')
                return
            await manager.handle_request(scope, receive, send)  # type: ignore[arg-type]

        return mcp_endpoint


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/problem+json")]
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)
