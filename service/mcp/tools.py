"""The MCP tools: ``search``, ``ask``, ``fetch_page`` and ``ingest``, over the service's own resources.

Each tool does what its HTTP route does, through the same code: the answerer's retriever for
``search``, :meth:`Answerer.answer` under the generation gate for ``ask``, the index registry for
``fetch_page`` and the job manager for ``ingest``. Arguments are checked twice: their JSON schema
(bounds an agent reads before calling) and the same checks the HTTP routes make; every refusal is a
:class:`ToolError`, which the client receives as an ``isError`` result, never a protocol failure.

Not ``from __future__ import annotations``: the SDK reads each tool's annotations at run time, and
the question's bound is a local of :func:`build_server`.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from citeline.indexes import CitelineError, validate_index_name
from citeline.service.answering import Answer, retrieved
from citeline.service.api import metrics
from citeline.service.api.cache import cache_key
from citeline.service.api.resources import Resources, generate, observe, off_loop, question_text, ready
from citeline.service.exceptions import AccessError
from citeline.service.operations import IngestJobRequest, JobManager

INSTRUCTIONS = (
    "citeline answers questions from an ingested documentation corpus, and every answer sentence cites "
    "a checked quote from a stored page. Use `ask` for a question that wants an answer with citations; "
    "`search` to find which stored passages mention something (no generation, fast); `fetch_page` to read "
    "a stored page whose URL a search hit or citation gave; `ingest` (keys with the ingest scope only) to "
    "crawl new pages into an index."
)

MAX_URL_CHARS = 2048
MAX_PAGE_CHARS = 100_000

IndexName = Annotated[
    str | None,
    Field(
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Index to use (letters, digits, '.', '_', '-'); omit for the server's default index.",
    ),
]


class ToolContext:
    """What a tool needs besides its arguments: the shared resources, and how callers are checked."""

    def __init__(self, resources: Resources, *, transport: Literal["http", "stdio"], allow_ingest: bool = False,
                 jobs: JobManager | None = None, ready_wait_s: float = 0.0) -> None:  # fmt: skip
        self.resources = resources
        self.transport = transport
        self.allow_ingest = allow_ingest
        """stdio only: whether ``ingest`` may start jobs (``citeline mcp --allow-ingest``)."""
        self.jobs = jobs
        """stdio only: the job manager (the HTTP service's own is ``resources.jobs``)."""
        self.ready_wait_s = ready_wait_s
        """How long a call waits for the models to load (stdio starts answering before they are)."""

    async def ready(self) -> None:
        deadline = time.monotonic() + self.ready_wait_s
        # The models load in a plain thread (shared with the HTTP service), which sets no event.
        while not self.resources.ready and self.resources.error is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    def index_name(self, name: str | None) -> str:
        return validate_index_name(name or self.resources.settings.index)

    def check_ingest(self, ctx: Context[Any, Any] | None) -> JobManager:
        """The job manager, when this caller may start ingest jobs; else ToolError."""
        if self.transport == "stdio":
            if not self.allow_ingest:
                raise ToolError("ingest is off on this stdio server: start it with `citeline mcp --allow-ingest`")
            if self.jobs is None:
                raise ToolError("the job runner is not available")
            return self.jobs
        # The streamable-HTTP endpoint already checked the key for `read`; ingest needs more.
        request = ctx.request_context.request if ctx is not None else None
        headers: Mapping[str, str] = getattr(request, "headers", None) or {}
        client = getattr(getattr(request, "client", None), "host", None) or "unknown"
        try:
            self.resources.access.authenticate(headers, client, "ingest")
        except AccessError as exc:
            raise ToolError(f"not allowed: {exc}") from exc
        if self.resources.jobs is None:
            raise ToolError("the job runner is starting; try again shortly")
        return self.resources.jobs


@contextmanager
def tool_errors() -> Iterator[None]:
    """Every error citeline raises on purpose reaches the agent as its message, flagged ``isError``."""
    try:
        yield
    except ToolError:
        raise
    except CitelineError as exc:
        title = getattr(exc, "title", None)
        raise ToolError(f"{title}: {exc}" if title else str(exc)) from exc
    except (ValueError, msgspec.ValidationError) as exc:
        raise ToolError(str(exc)) from exc


def answer_content(answer: Answer) -> dict[str, Any]:
    """The answer as ``POST /v1/ask`` returns it, with each citation marked ``supported`` when a
    sentence that cites it is supported by it."""
    body: dict[str, Any] = msgspec.to_builtins(answer)
    supported = {c for s in answer.sentences if s.supported for c in s.citations}
    for citation in body["citations"]:
        citation["supported"] = citation["id"] in supported
    return body


def build_server(
    context: ToolContext, *, lifespan: Callable[[MCPServer[Any]], AbstractAsyncContextManager[Any]] | None = None
) -> MCPServer[Any]:
    """The MCP server with citeline's four tools; ``lifespan`` runs while a transport serves it."""
    with _root_logging_kept():
        server: MCPServer[Any] = MCPServer(
            name="citeline", instructions=INSTRUCTIONS, version="0.1.0", lifespan=lifespan
        )
    max_question = context.resources.settings.max_question_chars

    @server.tool(
        title="Search stored passages",
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
        description=(
            "Find the stored passages most relevant to a query, as `ask` retrieves them, without writing "
            "an answer (fast). Each hit has the page URL, title, section heading, the passage text and its "
            "character offsets [start, end) in the page's stored text (see fetch_page)."
        ),
    )
    async def search(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="What to look for, in plain words.")],
        k: Annotated[int, Field(ge=1, le=50, description="Number of passages to return (1-50).")] = 5,
        index: IndexName = None,
    ) -> dict[str, Any]:
        with tool_errors():
            if not query.strip():
                raise ToolError("the query is blank")
            await context.ready()
            registry, answerer = ready(context.resources)
            async with registry.alease(context.index_name(index)) as passage_index:
                started = time.perf_counter()
                hits = await off_loop(answerer.retriever.search, passage_index, query.strip(), k)
            return {
                "query": query,
                "index": passage_index.name,
                "hits": [msgspec.to_builtins(retrieved(h)) for h in hits],
                "took_ms": round((time.perf_counter() - started) * 1000, 1),
            }

    @server.tool(
        title="Answer with checked citations",
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
        description=(
            "Answer a question from the stored documentation. Every sentence of the answer cites a quote "
            "that was checked to support it; `citations` lists each with url, title, the exact quote, its "
            "offsets, a text-fragment link (fragment_url) that opens the page at the quote, and `supported`. "
            "When the sources do not answer the question the result abstains (abstained: true) and lists "
            "the closest pages under see_also. Slow (seconds): prefer `search` to just locate passages."
        ),
    )
    async def ask(
        question: Annotated[
            str, Field(min_length=1, max_length=max_question, description="The question, in plain language.")
        ],
        index: IndexName = None,
        top_k: Annotated[
            int | None, Field(ge=1, le=10, description="Passages given to the generator (1-10; default: server's).")
        ] = None,
        policy: Annotated[
            Literal["strict", "flag"],
            Field(description="strict: drop unsupported sentences (abstain if none is left); flag: keep and mark."),
        ] = "strict",
    ) -> dict[str, Any]:
        resources = context.resources
        with tool_errors():
            text = question_text(question, resources)
            await context.ready()
            registry, answerer = ready(resources)
            async with registry.alease(context.index_name(index)) as passage_index:
                generation = await off_loop(passage_index.generation)
                key = cache_key(passage_index.name, generation, text, top_k, policy, 1)
                cached = resources.cache.get(key)
                if cached is not None:
                    metrics.ANSWERS.labels("cached").inc()
                    return answer_content(replace(cached, cached=True))
                answer: Answer = await generate(
                    resources, lambda: answerer.answer(text, passage_index, top_k=top_k, policy=policy)
                )
            observe(answer)
            resources.cache.put(key, answer)
            return answer_content(answer)

    @server.tool(
        title="Read a stored page",
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
        description=(
            "The stored text of one ingested page, by its URL (as a search hit or citation gives it), with "
            "its provenance: title, fetched URL, fetch time, HTTP status, content hash, license, author. "
            "Long pages come in slices: pass `offset` (the previous `next_offset`) to read on."
        ),
    )
    async def fetch_page(
        url: Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS, description="The page's URL.")],
        index: IndexName = None,
        offset: Annotated[int, Field(ge=0, description="First character of the text to return.")] = 0,
        max_chars: Annotated[
            int, Field(ge=1, le=MAX_PAGE_CHARS, description="Characters of text to return at most.")
        ] = 20_000,
    ) -> dict[str, Any]:
        with tool_errors():
            await context.ready()
            registry, _ = ready(context.resources)
            async with registry.alease(context.index_name(index)) as passage_index:
                page = await off_loop(passage_index.page, url.strip())
            if page is None:
                raise ToolError(f"no stored page has the URL {url.strip()[:200]!r} in index {passage_index.name!r}")
            end = min(len(page.text), offset + max_chars)
            return {
                "url": page.url,
                "title": page.title,
                "index": passage_index.name,
                "text": page.text[offset:end],
                "offset": offset,
                "next_offset": end if end < len(page.text) else None,
                "total_chars": len(page.text),
                "fetched_url": page.fetched_url or page.url,
                "fetched_at": page.fetched_at or None,
                "http_status": page.status,
                "content_hash": page.content_hash or None,
                "license": page.license,
                "author": page.author,
                "date": page.date,
                "site_name": page.sitename,
                "language": page.language,
                "gone": page.gone,
            }

    @server.tool(
        title="Start an ingest job",
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=True),
        description=(
            "Crawl pages into an index in the background (what `citeline ingest` does) and return the job: "
            "its id, state and progress. Needs an API key with the ingest scope over HTTP; over stdio, a "
            "server started with --allow-ingest. Seeds must be public http(s) URLs (the server's allow-list "
            "applies)."
        ),
    )
    async def ingest(
        *,
        seeds: Annotated[list[str], Field(max_length=100, description="http(s) URLs to crawl from.")],
        ctx: Context[Any, Any],
        index: IndexName = None,
        max_pages: Annotated[int | None, Field(ge=1, le=100_000, description="Stop after this many pages.")] = None,
        max_depth: Annotated[int, Field(ge=0, le=50, description="Links to follow from a seed (0: seeds only).")] = 1,
        scope: Annotated[
            Literal["prefix", "host"], Field(description="prefix: stay under each seed's path; host: its whole host.")
        ] = "prefix",
        sitemaps: Annotated[list[str], Field(max_length=20, description="Sitemap URLs to read seeds from.")] = [],  # noqa: B006
    ) -> dict[str, Any]:
        jobs = context.check_ingest(ctx)
        with tool_errors():
            if not seeds and not sitemaps:
                raise ToolError("give at least one seed or sitemap URL")
            request = msgspec.convert(
                {
                    "seeds": seeds,
                    "sitemaps": sitemaps,
                    "index": context.index_name(index),
                    "max_pages": max_pages,
                    "max_depth": max_depth,
                    "scope": scope,
                },
                IngestJobRequest,
            )
            job = await asyncio.to_thread(jobs.start, request)
            metrics.INGEST_JOBS.labels("started").inc()
            public: dict[str, Any] = job.public(jobs.directory)
            return public

    return server


@contextmanager
def _root_logging_kept() -> Iterator[None]:
    """MCPServer() calls ``logging.basicConfig`` (a Rich handler at INFO on the root logger): the
    service's own logging, and a stdio server's stdout, stay as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
