"""``POST /v1/ask``: an answer with checked citations, plain or as server-sent events."""

import asyncio
import json
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from citeline.service.answering import Answer, Answerer, VerifiedSentence, retrieved
from citeline.service.answering.source_set import SourceSet
from citeline.service.api import metrics
from citeline.service.api.cache import cache_key
from citeline.service.api.problems import problem_event
from citeline.service.api.resources import (
    Resources,
    close_sources,
    generate,
    observe,
    off_loop,
    question_text,
    ready,
    requires,
    sources_for,
)
from citeline.service.exceptions import (
    BusyError,
)
from citeline.service.live import LiveOptions
from citeline.service.operations import Lease


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


@post("/v1/ask", summary="Answer a question with checked, span-level citations", status_code=200,
      guards=[requires("read")])  # fmt: skip
async def ask(data: JSONBody[AskRequest], resources: NamedDependency[Resources]) -> Answer | ServerSentEvent:
    question = question_text(data.question, resources)
    registry, answerer = ready(resources)
    # Held until the answer is sent (a stream's last event): the index is never closed under it.
    lease = await registry.aacquire(data.index or resources.settings.index)
    streaming = False
    try:
        index = lease.index
        live = data.live_request(data.top_k or answerer.top_k)
        if data.stream:
            if resources.gate.busy and resources.gate.waiting >= resources.gate.max_waiting:
                raise BusyError("the generator queue is full", resources.gate.retry_after())
            sources = await sources_for(resources, answerer, question, index, live)
            events = _ask_events(resources, answerer, question, sources, data, lease=lease)
            # A stream the server never starts runs no ``finally``: its lease and live pages end with it.
            lease.release_with(events)
            weakref.finalize(events, close_sources, answerer, sources)
            streaming = True
            return ServerSentEvent(events)
        if live is not None:
            sources = await sources_for(resources, answerer, question, index, live)
            try:
                answer: Answer = await generate(
                    resources,
                    lambda: answerer.answer(question, sources, top_k=data.top_k, policy=data.policy, n=data.n),
                )
            finally:
                close_sources(answerer, sources)
            observe(answer)
            return answer
        generation = await off_loop(index.generation)
        key = cache_key(index.name, generation, question, data.top_k, data.policy, data.n)
        cached = resources.cache.get(key)
        if cached is not None:
            metrics.ANSWERS.labels("cached").inc()
            return replace(cached, cached=True)
        answer = await generate(
            resources, lambda: answerer.answer(question, index, top_k=data.top_k, policy=data.policy, n=data.n)
        )
        observe(answer)
        resources.cache.put(key, answer)
        return answer
    finally:
        if not streaming:
            lease.release()


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
        hits = await off_loop(answerer.retriever.search_sources, sources, question, data.top_k or answerer.top_k)
        if sources.report is not None:
            yield ServerSentEventMessage(event="live", data=msgspec.json.encode(sources.report).decode())
        retrieval = [msgspec.to_builtins(retrieved(h)) for h in hits]
        yield ServerSentEventMessage(event="retrieval", data=json.dumps(retrieval))
        work = asyncio.ensure_future(
            generate(
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
        observe(answer)
        yield ServerSentEventMessage(event="answer", data=msgspec.json.encode(answer).decode())
    except Exception as exc:  # every failure becomes the error event, as a plain response would
        yield problem_event(exc)
    finally:
        gone.set()  # the client left (or all is sent): the generator stops at its next token
        if work is not None and not work.done():
            await asyncio.wait({work})
        close_sources(answerer, sources)
        lease.release()
