"""The HTTP service (Litestar).

Heavy resources (embedder, generator, index registry) are created once: either handed in by the
caller (tests pass fakes) or loaded at start-up in a background thread, so ``/healthz`` answers at
once while ``/readyz`` says 503 until the models and an index are loaded. Domain errors become RFC
9457 problem details in one place, :func:`_problem_map`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
import structlog
from litestar import Litestar, Response, delete, get, post
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath, JSONBody, Parameter
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.static_files import create_static_files_router

from indexes import (
    CitelineIndexError,
    Embedder,
    EmbedderMismatchError,
    IndexNotFoundError,
    InvalidIndexNameError,
    PassageIndex,
)
from service import metrics
from service.answering import Answer, Answerer, RetrievedPassage, VerifiedSentence, retrieved
from service.auth import AccessControl, Scope
from service.cache import AnswerCache, cache_key
from service.chat import (
    ChatRequest,
    chunk,
    completion,
    completion_chunks,
    conversation,
    sentence_piece,
    standalone_question,
)
from service.exceptions import (
    AccessError,
    BusyError,
    CiteLineServiceError,
    GenerationError,
    ModelNotPreparedError,
    RateLimitedError,
)
from service.gate import GenerationGate
from service.generation import Generator
from service.jobs import IngestJobRequest, JobManager
from service.live import LiveOptions, LivePages, LiveRequest, LiveRequestError, UrlRefusedError
from service.logs import request_id_middleware
from service.registry import IndexRegistry, Lease
from service.settings import ServiceSettings
from service.sources import SourceSet
from service.websearch import SearchProvider

log = structlog.get_logger("citeline.service")


class AskRequest(LiveOptions, forbid_unknown_fields=True, kw_only=True):
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
    stream: Annotated[
        bool,
        msgspec.Meta(
            description="Server-sent events: `retrieval` (the passages), `draft` (unverified tokens as the"
            " generator writes them), `sentence` (each sentence verified while the answer is written: the"
            " answer's first sentences, in order, with their citations), then `answer` (the verified answer,"
            " as without streaming)."
        ),
    ] = False


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
    gate: GenerationGate = field(default_factory=GenerationGate)
    cache: AnswerCache = field(default_factory=AnswerCache)
    jobs: JobManager | None = None
    live: LivePages | None = None
    access: AccessControl = field(default_factory=lambda: AccessControl({}))
    loaded_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.answerer is not None and self.registry is not None


def _wire(
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


def _load(resources: Resources) -> None:
    settings = resources.settings
    try:
        from indexes import load_embedder, set_search_threads

        set_search_threads(1)  # one query per call: extra threads only wait on each other
        started = time.perf_counter()
        embedder = load_embedder(settings)
        generator = settings.generator()
        registry = settings.registry(embedder)
        for name in registry.names():
            with registry.lease(name):  # build or load each FAISS index now, not on the first request
                pass
        _wire(resources, registry, embedder, generator)
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

    def busy(exc: BusyError) -> ProblemDetailsException:
        metrics.REJECTED.labels("queue_full").inc()
        return ProblemDetailsException(
            status_code=503, title="Busy", detail=str(exc), headers={"Retry-After": str(exc.retry_after)}
        )

    def refused(exc: AccessError) -> ProblemDetailsException:
        metrics.REJECTED.labels("rate_limited" if exc.status == 429 else "unauthorized").inc()
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        titles = {401: "Unauthorized", 403: "Forbidden", 429: "Too many requests"}
        return ProblemDetailsException(
            status_code=exc.status, title=titles[exc.status], detail=str(exc), headers=headers
        )

    return {
        BusyError: busy,
        AccessError: refused,
        InvalidIndexNameError: problem(422, "Invalid index name"),
        UrlRefusedError: problem(422, "URL refused"),
        LiveRequestError: problem(422, "Invalid live-page request"),
        IndexNotFoundError: problem(404, "Unknown index"),
        EmbedderMismatchError: problem(409, "Index built with another embedder"),
        ModelNotPreparedError: problem(503, "Model not prepared"),
        GenerationError: problem(503, "Generation failed"),
        CitelineIndexError: problem(500, "Index error"),
        CiteLineServiceError: problem(500, "Service error"),
    }


_PROBLEMS = _problem_map()


def _problem(exc: Exception) -> ProblemDetailsException:
    """The problem details a plain response would carry for ``exc`` (500 for an unexpected error)."""
    if isinstance(exc, ProblemDetailsException):
        return exc
    for kind in type(exc).__mro__:
        convert = _PROBLEMS.get(kind)
        if convert is not None:
            return convert(exc)
    if isinstance(exc, HTTPException):
        return ProblemDetailsException(status_code=exc.status_code, title=exc.detail, extra=exc.extra)
    return ProblemDetailsException(
        status_code=500, title="Internal error", detail="the answer failed; the service log has the details"
    )


def _problem_event(exc: Exception, *, event: str | None = "error") -> ServerSentEventMessage:
    """An error after a stream started, as an event: the same problem details a plain response
    would carry (its status is already sent as 200), logged like one and never re-raised, so the
    client reads why instead of a dropped connection."""
    problem = _problem(exc)
    body: dict[str, Any] = {"status": problem.status_code}
    if problem.title is not None:
        body["title"] = problem.title
    if problem.detail:
        body["detail"] = problem.detail
    if isinstance(problem.extra, dict):
        body.update(problem.extra)
    if not isinstance(exc, HTTPException) and not any(kind in _PROBLEMS for kind in type(exc).__mro__):
        log.error("stream failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    else:
        log.info("stream ended with a problem", status=problem.status_code, title=problem.title)
    if event is None:
        # OpenAI-style clients read a chunk with an ``error`` member as the stream's failure.
        body["error"] = {"message": problem.detail or problem.title, "type": problem.title, "code": problem.status_code}
    return ServerSentEventMessage(event=event, data=json.dumps(body))


async def _off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work in a thread. A thread cannot be stopped: a caller cancelled meanwhile (the
    client left) waits for it to end, so what it uses (an index lease, the generator's turn) is
    never released under it."""
    task = asyncio.ensure_future(asyncio.to_thread(work, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def _resources(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


def _ready(resources: Resources) -> tuple[IndexRegistry, Answerer]:
    if resources.registry is None or resources.answerer is None:
        detail = resources.error or "models are still loading"
        raise ProblemDetailsException(status_code=503, title="Not ready", detail=detail, headers={"Retry-After": "5"})
    return resources.registry, resources.answerer


def requires(scope: Scope) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard: the request must carry an API key with ``scope`` (when keys are configured) and be
    within its key's rate."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        resources: Resources = connection.app.state.resources
        client = connection.client.host if connection.client else "unknown"
        resources.access.authenticate(connection.headers, client, scope)

    return guard


def _question(text: str, resources: Resources) -> str:
    question = text.strip()
    if not question:
        raise ProblemDetailsException(status_code=422, title="Empty question", detail="the question is blank")
    limit = resources.settings.max_question_chars
    if len(question) > limit:
        raise ProblemDetailsException(
            status_code=422, title="Question too long", detail=f"{len(question)} characters; the limit is {limit}"
        )
    return question


def _observe(answer: Answer) -> None:
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


async def _generate(resources: Resources, work: Callable[[], Any]) -> Any:
    """Run generator work in a thread, one at a time, under the bounded queue."""
    metrics.QUEUE_DEPTH.set(resources.gate.waiting + 1)
    try:
        async with resources.gate.turn():
            metrics.QUEUE_DEPTH.set(resources.gate.waiting)
            metrics.GENERATING.set(1)
            started = time.perf_counter()
            try:
                return await _off_loop(work)
            finally:
                resources.gate.record(time.perf_counter() - started)
                metrics.GENERATING.set(0)
    finally:
        metrics.QUEUE_DEPTH.set(resources.gate.waiting)


def _index_gauges(registry: IndexRegistry) -> None:
    for name in registry.names():
        with registry.lease(name) as index:
            manifest = index.manifest()
        metrics.INDEX_PAGES.labels(name).set(manifest.pages)
        metrics.INDEX_PASSAGES.labels(name).set(manifest.passages)


_UI = Path(__file__).parent / "static" / "index.html"


@get("/", include_in_schema=False, media_type="text/html")
async def ui() -> Response[bytes]:
    """The web UI: one self-contained page (no CDN), talking to the API below."""
    return Response(_UI.read_bytes(), media_type="text/html", headers={"Cache-Control": "no-cache"})


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
        await _off_loop(_index_gauges, resources.registry)
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


@post("/v1/ask", summary="Answer a question with checked, span-level citations", status_code=200,
      guards=[requires("read")])  # fmt: skip
async def ask(data: JSONBody[AskRequest], resources: NamedDependency[Resources]) -> Answer | ServerSentEvent:
    question = _question(data.question, resources)
    registry, answerer = _ready(resources)
    # Held until the answer is sent (a stream's last event): the index is never closed under it.
    lease = await registry.aacquire(data.index or resources.settings.index)
    streaming = False
    try:
        index = lease.index
        live = data.live_request(data.top_k or answerer.top_k)
        if data.stream:
            if resources.gate.busy and resources.gate.waiting >= resources.gate.max_waiting:
                raise BusyError("the generator queue is full", resources.gate.retry_after())
            sources = await _sources(resources, answerer, question, index, live)
            events = _ask_events(resources, answerer, question, sources, data, lease=lease)
            # A stream the server never starts runs no ``finally``: its lease and live pages end with it.
            lease.release_with(events)
            weakref.finalize(events, _close, answerer, sources)
            streaming = True
            return ServerSentEvent(events)
        if live is not None:
            sources = await _sources(resources, answerer, question, index, live)
            try:
                answer: Answer = await _generate(
                    resources,
                    lambda: answerer.answer(question, sources, top_k=data.top_k, policy=data.policy, n=data.n),
                )
            finally:
                _close(answerer, sources)
            _observe(answer)
            return answer
        generation = await _off_loop(index.generation)
        key = cache_key(index.name, generation, question, data.top_k, data.policy, data.n)
        cached = resources.cache.get(key)
        if cached is not None:
            metrics.ANSWERS.labels("cached").inc()
            return replace(cached, cached=True)
        answer = await _generate(
            resources, lambda: answerer.answer(question, index, top_k=data.top_k, policy=data.policy, n=data.n)
        )
        _observe(answer)
        resources.cache.put(key, answer)
        return answer
    finally:
        if not streaming:
            lease.release()


def _live_pages(resources: Resources) -> LivePages:
    if resources.live is None:
        raise ProblemDetailsException(status_code=503, title="Not ready", detail="live fetching is starting")
    return resources.live


async def _sources(
    resources: Resources, answerer: Answerer, question: str, index: PassageIndex, live: LiveRequest | None
) -> SourceSet:
    """The stored index, with the live pages the request asks for (fetched now, within the budget)."""
    if live is None:
        return SourceSet(stored=index)
    sources = await _live_pages(resources).gather(question, live, index, answerer.retriever.search)
    report = sources.report
    if report is not None:
        metrics.STAGE_SECONDS.labels("live").observe(report.total_ms / 1000)
        log.info("live pages", pages=len(report.pages), skipped=len(report.skipped), ms=report.total_ms)
    return sources


def _close(answerer: Answerer, sources: SourceSet) -> None:
    if sources.live is not None:
        answerer.retriever.forget(sources.live)
    sources.close()


async def _ask_events(
    resources: Resources, answerer: Answerer, question: str, sources: SourceSet, data: AskRequest, *, lease: Lease
) -> AsyncIterator[ServerSentEventMessage]:
    """``retrieval``, ``draft`` tokens and each ``sentence`` verified while the answer is written, then
    the verified ``answer``; a client that goes away stops
    the generation at its next token. A failure ends the stream with an ``error`` event carrying
    the problem details a plain request would get."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (event, data), in the order they happened
    gone = threading.Event()

    def on_text(piece: str) -> bool:
        loop.call_soon_threadsafe(events.put_nowait, ("draft", json.dumps(piece)))
        return gone.is_set()

    def on_sentence(sentence: VerifiedSentence) -> None:
        loop.call_soon_threadsafe(events.put_nowait, ("sentence", msgspec.json.encode(sentence).decode()))

    work: asyncio.Future[Any] | None = None
    try:
        hits = await _off_loop(answerer.retriever.search_sources, sources, question, data.top_k or answerer.top_k)
        if sources.report is not None:
            yield ServerSentEventMessage(event="live", data=msgspec.json.encode(sources.report).decode())
        retrieval = [msgspec.to_builtins(retrieved(h)) for h in hits]
        yield ServerSentEventMessage(event="retrieval", data=json.dumps(retrieval))
        work = asyncio.ensure_future(
            _generate(
                resources,
                lambda: answerer.answer(
                    question,
                    sources,
                    top_k=data.top_k,
                    policy=data.policy,
                    n=data.n,
                    on_text=on_text,
                    on_sentence=on_sentence,
                ),
            )
        )
        while not work.done() or not events.empty():
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({getter, work}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                event, payload = getter.result()
                yield ServerSentEventMessage(event=event, data=payload)
            else:
                getter.cancel()
                if not done:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
        answer: Answer = work.result()
        _observe(answer)
        yield ServerSentEventMessage(event="answer", data=msgspec.json.encode(answer).decode())
    except Exception as exc:  # every failure becomes the error event, as a plain response would
        yield _problem_event(exc)
    finally:
        gone.set()  # the client left (or all is sent): the generator stops at its next token
        if work is not None and not work.done():
            await asyncio.wait({work})
        _close(answerer, sources)
        lease.release()


@post("/v1/chat/completions", summary="OpenAI-compatible chat: verified answers, citations as url_citation annotations",
      status_code=200, guards=[requires("read")])  # fmt: skip
async def chat_completions(
    data: JSONBody[ChatRequest], resources: NamedDependency[Resources]
) -> Response[dict[str, Any]] | ServerSentEvent:
    try:
        last, history = conversation(data)
    except ValueError as exc:
        raise ProblemDetailsException(status_code=422, title="Invalid conversation", detail=str(exc)) from exc
    question = _question(last, resources)
    registry, answerer = _ready(resources)
    lease = await registry.aacquire(data.index or resources.settings.index)
    streaming = False
    try:
        result = await _chat(data, resources, answerer, question, history, lease=lease)
        streaming = isinstance(result, ServerSentEvent)
        return result
    finally:
        if not streaming:
            lease.release()


async def _chat(
    data: ChatRequest,
    resources: Resources,
    answerer: Answerer,
    question: str,
    history: list[tuple[str, str]],
    *,
    lease: Lease,
) -> Response[dict[str, Any]] | ServerSentEvent:
    """The chat answer from the leased index; a stream takes the lease over and ends it."""
    index = lease.index
    model = f"citeline/{answerer.generator.model_name}"
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    live = data.live_request(data.top_k or answerer.top_k)
    if live is not None:
        _live_pages(resources).validate(live)  # 422 now, before the question is rewritten by the model

    loop = asyncio.get_running_loop()
    verified: asyncio.Queue[VerifiedSentence] = asyncio.Queue()

    def on_sentence(sentence: VerifiedSentence) -> None:
        loop.call_soon_threadsafe(verified.put_nowait, sentence)

    async def work() -> tuple[str, Answer]:
        standalone = question
        if any(role == "user" for role, _ in history):
            standalone = await _generate(resources, lambda: standalone_question(answerer.generator, question, history))
        # Live pages are fetched for the standalone question: a follow-up alone says too little.
        sources = await _sources(resources, answerer, standalone, index, live)
        try:
            answer: Answer = await _generate(
                resources,
                lambda: answerer.answer(
                    standalone,
                    sources,
                    top_k=data.top_k,
                    policy=data.policy,
                    on_sentence=on_sentence if data.stream else None,
                ),
            )
        finally:
            _close(answerer, sources)
        return standalone, answer

    if data.stream:
        events = _chat_events(work, model, request_id, lease, verified)
        lease.release_with(events)
        return ServerSentEvent(events)
    standalone, answer = await work()
    _observe(answer)
    return Response(completion(answer, model=model, standalone=standalone, request_id=request_id))


async def _chat_events(
    work: Callable[[], Awaitable[tuple[str, Answer]]],
    model: str,
    request_id: str,
    lease: Lease,
    verified: asyncio.Queue[VerifiedSentence],
) -> AsyncIterator[ServerSentEventMessage]:
    """Keep-alive comments while the answer is written, each sentence as soon as it is verified,
    then the rest of the verified answer as chunks (only verified text is ever shown), ending with
    ``data: [DONE]``. A failure is one chunk of problem details (with an OpenAI-style ``error``
    member), then ``[DONE]``."""
    task = asyncio.ensure_future(work())
    streamed = ""
    try:
        try:
            while not task.done() or not verified.empty():
                getter = asyncio.ensure_future(verified.get())
                done, _ = await asyncio.wait({getter, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if not done:
                        yield ServerSentEventMessage(comment="keep-alive", data=None)
                    continue
                sentence = getter.result()
                if not streamed:
                    yield ServerSentEventMessage(
                        data=json.dumps(chunk(request_id, model, {"role": "assistant", "content": ""}))
                    )
                piece = (" " if streamed else "") + sentence_piece(sentence.sentence)
                streamed += piece
                yield ServerSentEventMessage(data=json.dumps(chunk(request_id, model, {"content": piece})))
            standalone, answer = task.result()
        except Exception as exc:  # every failure becomes the error chunk, as a plain response would
            yield _problem_event(exc, event=None)
            yield ServerSentEventMessage(data="[DONE]")
            return
        finally:
            if not task.done():
                await asyncio.wait({task})
        _observe(answer)
        for rest in completion_chunks(
            answer, model=model, standalone=standalone, request_id=request_id, streamed=streamed
        ):
            yield ServerSentEventMessage(data=json.dumps(rest))
        yield ServerSentEventMessage(data="[DONE]")
    finally:
        lease.release()


@get("/v1/search", summary="Passage search as answers retrieve, no generation", guards=[requires("read")])
async def search_passages(
    resources: NamedDependency[Resources],
    q: Annotated[str, Parameter(min_length=1, max_length=2000, description="The query")],
    index: Annotated[str | None, Parameter(description="Index to search")] = None,
    k: Annotated[int, Parameter(ge=1, le=50, description="Number of passages")] = 5,
) -> SearchResponse:
    if not q.strip():
        raise ProblemDetailsException(status_code=422, title="Empty query", detail="the query is blank")
    registry, answerer = _ready(resources)
    async with registry.alease(index or resources.settings.index) as passage_index:
        started = time.perf_counter()
        hits = await _off_loop(answerer.retriever.search, passage_index, q, k)
    return SearchResponse(
        query=q,
        index=passage_index.name,
        hits=[retrieved(h) for h in hits],
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _count_job(job: Any, summary: Any) -> None:
    metrics.INGEST_JOBS.labels(job.state).inc()
    if isinstance(summary, dict):
        for result in ("pages_new", "pages_updated", "pages_unchanged", "pages_removed", "duplicates", "pages_failed"):
            metrics.INGEST_PAGES.labels(result.removeprefix("pages_")).inc(int(summary.get(result) or 0))


def _citeline_command() -> list[str]:
    script = Path(sys.executable).parent / "citeline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


def _jobs(resources: Resources) -> JobManager:
    if resources.jobs is None:
        raise ProblemDetailsException(status_code=503, title="Not ready", detail="the job runner is starting")
    return resources.jobs


@post("/v1/ingest", summary="Start an ingest job (the options of `citeline ingest`)", status_code=202,
      guards=[requires("ingest")])  # fmt: skip
async def start_ingest(data: JSONBody[IngestJobRequest], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = _jobs(resources)
    try:
        job = await asyncio.to_thread(jobs.start, data)
    except ValueError as exc:
        raise ProblemDetailsException(status_code=422, title="Invalid ingest job", detail=str(exc)) from exc
    metrics.INGEST_JOBS.labels("started").inc()
    return job.public(jobs.directory)


@get("/v1/ingest", summary="Ingest jobs, newest first", guards=[requires("ingest")])
async def list_ingest(resources: NamedDependency[Resources]) -> list[dict[str, Any]]:
    jobs = _jobs(resources)
    return [job.public(jobs.directory) for job in jobs.list()]


@get("/v1/ingest/{job_id:str}", summary="An ingest job's state, progress and summary", guards=[requires("ingest")])
async def get_ingest(job_id: FromPath[str], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = _jobs(resources)
    job = jobs.get(job_id)
    if job is None:
        raise ProblemDetailsException(status_code=404, title="Unknown job", detail=job_id)
    return job.public(jobs.directory)


@delete("/v1/ingest/{job_id:str}", summary="Cancel an ingest job (its checkpoint lets a rerun resume)",
        status_code=200, guards=[requires("ingest")])  # fmt: skip
async def cancel_ingest(job_id: FromPath[str], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = _jobs(resources)
    job = await asyncio.to_thread(jobs.cancel, job_id)
    if job is None:
        raise ProblemDetailsException(status_code=404, title="Unknown job", detail=job_id)
    return job.public(jobs.directory)


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
        _wire(resources, settings.registry(embedder), embedder, generator, live_transport=live_transport, search=search)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.resources = resources
        resources.jobs = JobManager(
            settings.data_dir,
            command=job_command or _citeline_command(),
            allow_hosts=settings.allow_hosts,
            url_maps=settings.ingest_url_maps,
        )
        resources.jobs.on_finish = _count_job
        restarted = resources.jobs.recover()
        if restarted:
            log.info("ingest jobs restarted after a service restart", jobs=restarted)
        if not resources.ready:
            threading.Thread(target=_load, args=(resources,), name="citeline-loader", daemon=True).start()
        try:
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
            search_passages,
            start_ingest,
            list_ingest,
            get_ingest,
            cancel_ingest,
            Metrics,
            create_static_files_router(path="/static", directories=[_UI.parent], include_in_schema=False),
        ],
        middleware=[request_id_middleware, prometheus.middleware],
        cors_config=cors,
        dependencies={"resources": Provide(_resources, sync_to_thread=False)},
        lifespan=[lifespan],
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    enable_for_all_http_exceptions=True, exception_to_problem_detail_map=_problem_map()
                )
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
