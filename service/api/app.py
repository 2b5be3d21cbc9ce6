"""The HTTP service (Litestar).

Heavy resources (embedder, generator, index registry) are created once: either handed in by the
caller (tests pass fakes) or loaded at start-up in a background thread, so ``/healthz`` answers at
once while ``/readyz`` says 503 until the models and an index are loaded. Domain errors become RFC
9457 problem details in one place, :func:`problem_map` (rendered in OpenAI's error shape on the
OpenAI-compatible routes).
"""

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsPlugin,
)
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router

from citeline.indexes import (
    Embedder,
)
from citeline.service.api.ask import ask
from citeline.service.api.auth import AccessControl
from citeline.service.api.cache import AnswerCache
from citeline.service.api.chat import chat_completions
from citeline.service.api.gate import GenerationGate
from citeline.service.api.health import UI_PAGE, healthz, readyz, ui
from citeline.service.api.ingest_jobs import (
    cancel_ingest,
    citeline_command,
    count_job,
    get_ingest,
    list_ingest,
    start_ingest,
)
from citeline.service.api.logs import request_id_middleware
from citeline.service.api.models import list_models, retrieve_model
from citeline.service.api.problems import problem_map
from citeline.service.api.resources import (
    Resources,
    load_resources,
    resources_provider,
    wire,
)
from citeline.service.api.search import search_passages
from citeline.service.generation import Generator
from citeline.service.live import SearchProvider
from citeline.service.mcp.http import McpMount
from citeline.service.operations import JobManager
from citeline.service.settings import ServiceSettings

log = structlog.get_logger("citeline.service")


def create_app(
    settings: ServiceSettings | None = None,
    *,
    embedder: Embedder | None = None,
    generator: Generator | None = None,
    job_command: list[str] | None = None,
    live_transport: httpx.AsyncBaseTransport | None = None,
    search: SearchProvider | None = None,
) -> Litestar:
    """Build the app. With ``embedder`` and ``generator`` given, nothing is loaded from disk, and
    ``live_transport`` and ``search`` stand in for the network of live pages (tests)."""
    settings = settings or ServiceSettings()
    resources = Resources(
        settings=settings,
        gate=GenerationGate(settings.max_queue),
        cache=AnswerCache(settings.answer_cache_size),
        access=AccessControl(settings.api_keys, settings.rate_limit_per_minute),
    )
    if embedder is not None and generator is not None:
        wire(resources, settings.registry(embedder), embedder, generator, live_transport=live_transport, search=search)
    mcp = McpMount()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.resources = resources
        resources.jobs = JobManager(
            settings.data_dir,
            command=job_command or citeline_command(),
            allow_hosts=settings.allow_hosts,
            url_maps=settings.ingest_url_maps,
        )
        resources.jobs.on_finish = count_job
        restarted = resources.jobs.recover()
        if restarted:
            log.info("ingest jobs restarted after a service restart", jobs=restarted)
        if not resources.ready:
            threading.Thread(target=load_resources, args=(resources,), name="citeline-loader", daemon=True).start()
        try:
            async with mcp.running(resources):
                yield
        finally:
            if resources.registry is not None:
                resources.registry.close()
            if resources.live is not None:
                await resources.live.aclose()

    prometheus = PrometheusConfig(app_name="citeline", prefix="citeline", exclude=["/metrics", "/healthz"])

    class Metrics(PrometheusController):
        path = "/metrics"

    cors = CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None
    return Litestar(
        route_handlers=[
            ui,
            healthz,
            readyz,
            ask,
            chat_completions,
            list_models,
            retrieve_model,
            search_passages,
            start_ingest,
            list_ingest,
            get_ingest,
            cancel_ingest,
            Metrics,
            mcp.handler(),
            create_static_files_router(path="/static", directories=[UI_PAGE.parent], include_in_schema=False),
        ],
        middleware=[request_id_middleware, prometheus.middleware],
        cors_config=cors,
        dependencies={"resources": Provide(resources_provider, sync_to_thread=False)},
        lifespan=[lifespan],
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(enable_for_all_http_exceptions=True, exception_to_problem_detail_map=problem_map())
            )
        ],
        openapi_config=OpenAPIConfig(
            title="citeline",
            version="0.1.0",
            path="/schema",
            # Swagger UI's files are served by the service itself: the docs work with no internet.
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url="/static/swagger/swagger-ui-bundle.js",
                    css_url="/static/swagger/swagger-ui.css",
                    standalone_preset_js_url="/static/swagger/swagger-ui-standalone-preset.js",
                    path="/swagger",
                    favicon="<link rel='icon' href='data:,'>",
                ),
            ],
        ),
        request_max_body_size=settings.max_body_bytes,
    )
