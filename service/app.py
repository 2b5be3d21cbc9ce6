"""The HTTP service (Litestar).

Heavy resources (embedder, generator, index registry) are created once: either handed in by the
caller (tests pass fakes) or loaded at start-up in a background thread, so ``/healthz`` answers at
once while ``/readyz`` says 503 until the models and an index are loaded. Domain errors become RFC
9457 problem details in one place, :func:`_problem_map`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import structlog
from litestar import Litestar, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody, Parameter
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from indexes import (
    CitelineIndexError,
    Embedder,
    EmbedderMismatchError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from service.answering import Answer, Answerer, RetrievedPassage, retrieved, search
from service.exceptions import CiteLineServiceError, GenerationError, ModelNotPreparedError
from service.generation import Generator
from service.registry import IndexRegistry
from service.settings import ServiceSettings

log = structlog.get_logger("citeline.service")


class AskRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A question for ``POST /v1/ask``."""

    question: Annotated[str, msgspec.Meta(min_length=1, description="The question, in plain language.")]
    index: Annotated[str | None, msgspec.Meta(description="Index to answer from (default: the configured one).")] = None
    top_k: Annotated[int, msgspec.Meta(ge=1, le=10, description="Passages given to the generator.")] | None = None
    policy: Annotated[
        Literal["strict", "flag"],
        msgspec.Meta(
            description="strict: remove unsupported sentences (abstain if none is left); flag: keep and mark."
        ),
    ] = "strict"
    n: Annotated[
        int, msgspec.Meta(ge=1, le=5, description="Distinct candidate answers to sample, verify and rank.")
    ] = 1


@dataclass(frozen=True, slots=True)
class SearchResponse:
    query: str
    index: str
    hits: list[RetrievedPassage]
    took_ms: float


@dataclass(slots=True)
class Resources:
    """What requests share: created once, handed out by dependency injection."""

    settings: ServiceSettings
    registry: IndexRegistry | None = None
    answerer: Answerer | None = None
    error: str | None = None
    generation_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.answerer is not None and self.registry is not None


def _load(resources: Resources) -> None:
    settings = resources.settings
    try:
        from indexes import SentenceTransformerEmbedder
        from service.generation import OpenVINOGenerator

        started = time.perf_counter()
        embedder = SentenceTransformerEmbedder(settings.embedding_model)
        generator = OpenVINOGenerator(settings.generator_dir(), cache_dir=settings.openvino_cache_dir())
        registry = IndexRegistry(settings.data_dir, embedder.model_name, embedder.dimension)
        for name in registry.names():
            registry.get(name)  # build or load each FAISS index now, not on the first request
        resources.registry = registry
        resources.answerer = Answerer(embedder, generator, top_k=settings.top_k, max_new_tokens=settings.max_new_tokens)
        resources.loaded_at = time.time()
        log.info("models loaded", seconds=round(time.perf_counter() - started, 1), indexes=registry.names())
    except Exception as exc:  # surfaced through /readyz instead of killing the server
        resources.error = f"{type(exc).__name__}: {exc}"
        log.exception("loading failed", error=resources.error)


def _problem_map() -> dict[type[Exception], Callable[[Any], ProblemDetailsException]]:
    def problem(status: int, title: str) -> Callable[[Exception], ProblemDetailsException]:
        def convert(exc: Exception) -> ProblemDetailsException:
            return ProblemDetailsException(status_code=status, title=title, detail=str(exc))

        return convert

    return {
        InvalidIndexNameError: problem(422, "Invalid index name"),
        IndexNotFoundError: problem(404, "Unknown index"),
        EmbedderMismatchError: problem(409, "Index built with another embedder"),
        ModelNotPreparedError: problem(503, "Model not prepared"),
        GenerationError: problem(503, "Generation failed"),
        CitelineIndexError: problem(500, "Index error"),
        CiteLineServiceError: problem(500, "Service error"),
    }


def _resources(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


def _ready(resources: Resources) -> tuple[IndexRegistry, Answerer]:
    if resources.registry is None or resources.answerer is None:
        detail = resources.error or "models are still loading"
        raise ProblemDetailsException(status_code=503, title="Not ready", detail=detail, headers={"Retry-After": "5"})
    return resources.registry, resources.answerer


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
        await asyncio.to_thread(resources.registry.get, default_index)
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


@post("/v1/ask", summary="Answer a question with checked, span-level citations", status_code=200)
async def ask(data: JSONBody[AskRequest], resources: NamedDependency[Resources]) -> Answer:
    question = data.question.strip()
    if not question:
        raise ProblemDetailsException(status_code=422, title="Empty question", detail="the question is blank")
    limit = resources.settings.max_question_chars
    if len(question) > limit:
        raise ProblemDetailsException(
            status_code=422, title="Question too long", detail=f"{len(question)} characters; the limit is {limit}"
        )
    registry, answerer = _ready(resources)
    index = registry.get(data.index or resources.settings.index)
    async with resources.generation_lock:  # two cores: one generation at a time
        answer = await asyncio.to_thread(
            answerer.answer, question, index, top_k=data.top_k, policy=data.policy, n=data.n
        )
    log.info(
        "answered",
        index=index.name,
        abstained=answer.abstained,
        citations=len(answer.citations),
        total_ms=answer.timings.total_ms,
    )
    return answer


@get("/v1/search", summary="Dense passage search, no generation")
async def search_passages(
    resources: NamedDependency[Resources],
    q: Annotated[str, Parameter(min_length=1, max_length=2000, description="The query")],
    index: Annotated[str | None, Parameter(description="Index to search")] = None,
    k: Annotated[int, Parameter(ge=1, le=50, description="Number of passages")] = 5,
) -> SearchResponse:
    if not q.strip():
        raise ProblemDetailsException(status_code=422, title="Empty query", detail="the query is blank")
    registry, answerer = _ready(resources)
    passage_index = registry.get(index or resources.settings.index)
    started = time.perf_counter()
    hits = await asyncio.to_thread(search, passage_index, answerer.embedder, q, k)
    return SearchResponse(
        query=q,
        index=passage_index.name,
        hits=[retrieved(h) for h in hits],
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def create_app(
    settings: ServiceSettings | None = None,
    *,
    embedder: Embedder | None = None,
    generator: Generator | None = None,
) -> Litestar:
    """Build the app. With ``embedder`` and ``generator`` given, nothing is loaded from disk."""
    settings = settings or ServiceSettings()
    resources = Resources(settings=settings)
    if embedder is not None and generator is not None:
        resources.registry = IndexRegistry(settings.data_dir, embedder.model_name, embedder.dimension)
        resources.answerer = Answerer(embedder, generator, top_k=settings.top_k, max_new_tokens=settings.max_new_tokens)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.resources = resources
        if not resources.ready:
            threading.Thread(target=_load, args=(resources,), name="citeline-loader", daemon=True).start()
        try:
            yield
        finally:
            if resources.registry is not None:
                resources.registry.close()

    return Litestar(
        route_handlers=[healthz, readyz, ask, search_passages],
        dependencies={"resources": Provide(_resources, sync_to_thread=False)},
        lifespan=[lifespan],
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    enable_for_all_http_exceptions=True, exception_to_problem_detail_map=_problem_map()
                )
            )
        ],
        openapi_config=OpenAPIConfig(title="citeline", version="0.1.0", path="/schema"),
        request_max_body_size=settings.max_body_bytes,
    )
