"""``POST /v1/chat/completions``: the OpenAI-compatible chat route (verified sentences only). Its
errors, streamed ones included, are in OpenAI's error shape."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar import Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from citeline.service.answering import Answer, Answerer, VerifiedSentence
from citeline.service.api.openai_chat import (
    ChatRequest,
    chosen_index,
    chunk,
    completion,
    completion_chunks,
    conversation,
    model_id,
    sentence_piece,
    standalone_question,
)
from citeline.service.api.problems import openai_exception_handlers, problem_event
from citeline.service.api.resources import (
    Resources,
    close_sources,
    generate,
    live_pages,
    observe,
    question_text,
    ready,
    requires,
    sources_for,
)
from citeline.service.exceptions import RequestError
from citeline.service.operations import Lease


@post("/v1/chat/completions", summary="OpenAI-compatible chat: verified answers, citations as url_citation annotations",
      status_code=200, guards=[requires("read")], exception_handlers=openai_exception_handlers())  # fmt: skip
async def chat_completions(
    data: JSONBody[ChatRequest], resources: NamedDependency[Resources]
) -> Response[dict[str, Any]] | ServerSentEvent:
    try:
        last, history = conversation(data)
    except ValueError as exc:
        raise RequestError(str(exc), title="Invalid conversation") from exc
    question = question_text(last, resources)
    registry, answerer = ready(resources)
    lease = await registry.aacquire(chosen_index(data.model, data.index, registry.names, resources.settings.index))
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
    model = model_id(index.name)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    live = data.live_request(data.top_k or answerer.top_k)
    if live is not None:
        live_pages(resources).validate(live)  # 422 now, before the question is rewritten by the model

    loop = asyncio.get_running_loop()
    verified: asyncio.Queue[VerifiedSentence] = asyncio.Queue()

    def on_sentence(sentence: VerifiedSentence) -> None:
        loop.call_soon_threadsafe(verified.put_nowait, sentence)

    async def work() -> tuple[str, Answer]:
        standalone = question
        if any(role == "user" for role, _ in history):
            standalone = await generate(resources, lambda: standalone_question(answerer.generator, question, history))
        # Live pages are fetched for the standalone question: a follow-up alone says too little.
        sources = await sources_for(resources, answerer, standalone, index, live)
        try:
            answer: Answer = await generate(
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
            close_sources(answerer, sources)
        return standalone, answer

    if data.stream:
        events = _chat_events(work, model, request_id, lease, verified)
        lease.release_with(events)
        return ServerSentEvent(events)
    standalone, answer = await work()
    observe(answer)
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
            yield problem_event(exc, event=None)
            yield ServerSentEventMessage(data="[DONE]")
            return
        finally:
            if not task.done():
                await asyncio.wait({task})
        observe(answer)
        for rest in completion_chunks(
            answer, model=model, standalone=standalone, request_id=request_id, streamed=streamed
        ):
            yield ServerSentEventMessage(data=json.dumps(rest))
        yield ServerSentEventMessage(data="[DONE]")
    finally:
        lease.release()
