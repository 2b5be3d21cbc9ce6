"""``citeline serve``: the HTTP service."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass
from citeline.service.cli._common import app


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.port).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /schema)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import uvicorn

    from citeline.service.api import create_app
    from citeline.service.api.logs import configure_json_logs
    from citeline.service.settings import ServiceSettings

    configure_json_logs()
    settings = ServiceSettings()
    uvicorn.run(
        create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info", access_log=False
    )
