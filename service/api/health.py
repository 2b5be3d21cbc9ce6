"""The web UI, liveness and readiness."""

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from citeline.indexes import (
    IndexNotFoundError,
)
from citeline.service.api.resources import (
    Resources,
    index_gauges,
    off_loop,
)

UI_PAGE = Path(__file__).parents[1] / "static" / "index.html"


@get("/", include_in_schema=False, media_type="text/html")
async def ui() -> Response[bytes]:
    """The web UI: one self-contained page (no CDN), talking to the API below."""
    return Response(UI_PAGE.read_bytes(), media_type="text/html", headers={"Cache-Control": "no-cache"})


@get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: models and the default index are loaded", status_code=200)
async def readyz(resources: NamedDependency[Resources]) -> Response[dict[str, Any]]:
    if resources.registry is None or resources.answerer is None:
        body = {"status": "failed" if resources.error else "loading", "error": resources.error}
        return Response(body, status_code=503, headers={"Retry-After": "5"})
    default_index = resources.settings.index
    try:
        async with resources.registry.alease(default_index):
            pass
        await off_loop(index_gauges, resources.registry)
    except IndexNotFoundError as exc:
        return Response({"status": "no-index", "error": str(exc)}, status_code=503, headers={"Retry-After": "30"})
    return Response(
        {
            "status": "ready",
            "indexes": resources.registry.names(),
            "default_index": default_index,
            "generator": resources.answerer.generator.model_name,
            "embedder": resources.answerer.embedder.model_name,
        }
    )
