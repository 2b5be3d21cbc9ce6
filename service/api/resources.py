"""What requests share (models, indexes, queue, cache, jobs, live pages), created once and handed out by
dependency injection, and the steps every answering route takes with them.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler

from citeline.indexes import (
    Embedder,
    PassageIndex,
)
from citeline.service.answering import Answer, Answerer
from citeline.service.answering.source_set import SourceSet
from citeline.service.api import metrics
from citeline.service.api.auth import AccessControl, Scope
from citeline.service.api.cache import AnswerCache
from citeline.service.api.gate import GenerationGate
from citeline.service.exceptions import NotReadyError, RequestError
from citeline.service.generation import Generator
from citeline.service.live import LivePages, LiveRequest, SearchProvider
from citeline.service.operations import IndexRegistry, JobManager
from citeline.service.settings import ServiceSettings

log = structlog.get_logger("citeline.service")


@dataclass(slots=True)
class Resources:
    """What requests share: created once, handed out by dependency injection."""

    settings: ServiceSettings
    registry: IndexRegistry | None = None
    answerer: Answerer | None = None
    error: str | None = None
    gate: GenerationGate = field(default_factory=GenerationGate)
    cache: AnswerCache = field(default_factory=AnswerCache)
    jobs: JobManager | None = None
    live: LivePages | None = None
    access: AccessControl = field(default_factory=lambda: AccessControl({}))
    loaded_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.answerer is not None and self.registry is not None


def wire(
    resources: Resources,
    registry: IndexRegistry,
    embedder: Embedder,
    generator: Generator,
    *,
    live_transport: httpx.AsyncBaseTransport | None = None,
    search: SearchProvider | None = None,
) -> None:
    """Hand the loaded (or given) models and indexes to what requests use: the service is ready after."""
    settings = resources.settings
    resources.live = settings.live_pages(embedder, transport=live_transport, search=search)
    resources.answerer = settings.answerer(embedder, generator)
    registry.on_close(resources.answerer.retriever.forget)
    resources.registry = registry


def load_resources(resources: Resources) -> None:
    settings = resources.settings
    try:
        from citeline.indexes import load_embedder, set_search_threads

        set_search_threads(1)  # one query per call: extra threads only wait on each other
        started = time.perf_counter()
        embedder = load_embedder(settings)
        generator = settings.generator()
        registry = settings.registry(embedder)
        for name in registry.names():
            with registry.lease(name):  # build or load each FAISS index now, not on the first request
                pass
        wire(resources, registry, embedder, generator)
        resources.loaded_at = time.time()
        log.info("models loaded", seconds=round(time.perf_counter() - started, 1), indexes=registry.names())
    except Exception as exc:  # surfaced through /readyz instead of killing the server
        resources.error = f"{type(exc).__name__}: {exc}"
        log.exception("loading failed", error=resources.error)


async def off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work in a thread. A thread cannot be stopped: a caller cancelled meanwhile (the
    client left) waits for it to end, so what it uses (an index lease, the generator's turn) is
    never released under it."""
    task = asyncio.ensure_future(asyncio.to_thread(work, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def resources_provider(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


def ready(resources: Resources) -> tuple[IndexRegistry, Answerer]:
    if resources.registry is None or resources.answerer is None:
        detail = resources.error or "models are still loading"
        raise NotReadyError(detail)
    return resources.registry, resources.answerer


def requires(scope: Scope) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard: the request must carry an API key with ``scope`` (when keys are configured) and be
    within its key's rate."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        resources: Resources = connection.app.state.resources
        client = connection.client.host if connection.client else "unknown"
        resources.access.authenticate(connection.headers, client, scope)

    return guard


def question_text(text: str, resources: Resources) -> str:
    question = text.strip()
    if not question:
        raise RequestError("the question is blank", title="Empty question")
    limit = resources.settings.max_question_chars
    if len(question) > limit:
        raise RequestError(f"{len(question)} characters; the limit is {limit}", title="Question too long")
    return question


def observe(answer: Answer) -> None:
    timings = answer.timings
    metrics.STAGE_SECONDS.labels("retrieve").observe(timings.retrieve_ms / 1000)
    metrics.STAGE_SECONDS.labels("generate").observe(timings.generate_ms / 1000)
    metrics.STAGE_SECONDS.labels("verify").observe(timings.verify_ms / 1000)
    metrics.STAGE_SECONDS.labels("total").observe(timings.total_ms / 1000)
    if answer.usage.tokens_per_second:
        metrics.TOKENS_PER_SECOND.observe(answer.usage.tokens_per_second)
    metrics.JUDGE_CALLS.inc(answer.usage.judge_calls)
    metrics.ANSWERS.labels("abstained" if answer.abstained else "answered").inc()
    log.info(
        "answered",
        index=answer.index,
        abstained=answer.abstained,
        citations=len(answer.citations),
        total_ms=timings.total_ms,
    )


async def generate(resources: Resources, work: Callable[[], Any]) -> Any:
    """Run generator work in a thread, one at a time, under the bounded queue."""
    metrics.QUEUE_DEPTH.set(resources.gate.waiting + 1)
    try:
        async with resources.gate.turn():
            metrics.QUEUE_DEPTH.set(resources.gate.waiting)
            metrics.GENERATING.set(1)
            started = time.perf_counter()
            try:
                return await off_loop(work)
            finally:
                resources.gate.record(time.perf_counter() - started)
                metrics.GENERATING.set(0)
    finally:
        metrics.QUEUE_DEPTH.set(resources.gate.waiting)


def index_gauges(registry: IndexRegistry) -> None:
    for name in registry.names():
        with registry.lease(name) as index:
            manifest = index.manifest()
        metrics.INDEX_PAGES.labels(name).set(manifest.pages)
        metrics.INDEX_PASSAGES.labels(name).set(manifest.passages)


def live_pages(resources: Resources) -> LivePages:
    if resources.live is None:
        raise NotReadyError("live fetching is starting")
    return resources.live


async def sources_for(
    resources: Resources, answerer: Answerer, question: str, index: PassageIndex, live: LiveRequest | None
) -> SourceSet:
    """The stored index, with the live pages the request asks for (fetched now, within the budget)."""
    if live is None:
        return SourceSet(stored=index)
    sources = await live_pages(resources).gather(question, live, index, answerer.retriever.search)
    report = sources.report
    if report is not None:
        metrics.STAGE_SECONDS.labels("live").observe(report.total_ms / 1000)
        log.info("live pages", pages=len(report.pages), skipped=len(report.skipped), ms=report.total_ms)
    return sources


def close_sources(answerer: Answerer, sources: SourceSet) -> None:
    if sources.live is not None:
        answerer.retriever.forget(sources.live)
    sources.close()
