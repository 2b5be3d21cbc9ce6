"""OpenAI-compatible chat completions over citeline's verified answers.

Existing chat UIs and SDKs speak ``POST /v1/chat/completions``; citeline answers the last user
message from the index and returns the verified answer as the assistant message. Citations travel
the standard way, as ``message.annotations`` of ``type: "url_citation"`` whose ``start_index`` /
``end_index`` delimit the cited sentence in ``content`` and whose ``url`` opens the source at the
quoted span (a ``#:~:text=`` link). The full citeline answer (quotes, offsets into the page,
support scores, the standalone question) rides along under the extra key ``citeline``.

Follow-up questions ("and how do I write it back?") mean nothing to a retriever on their own: when
the conversation has earlier turns, the generator first rewrites the last question into a
standalone one, which is what gets retrieved and answered (and is shown in ``citeline``).

Each index is a model, ``citeline/<index>`` (``GET /v1/models`` lists them), so a chat UI's model
picker chooses the index. A model string of any other form (a client's default such as ``gpt-4o``)
selects nothing: the request's ``index`` or the service's default index answers.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec

from citeline.service.answering import Answer, AnswerSentence
from citeline.service.exceptions import RequestError
from citeline.service.generation import ChatMessage, Generator
from citeline.service.live import LiveOptions

MODEL_PREFIX = "citeline/"


class UnknownModelError(RequestError):
    """A ``citeline/<index>`` model naming no index (404, as OpenAI answers an unknown model)."""

    status = 404
    title = "Unknown model"
    param = "model"

    def __init__(self, model: str) -> None:
        # The name is the client's: shown as a repr, cut short, so it can neither forge nor flood the message.
        shown = repr(model[:120]) + ("..." if len(model) > 120 else "")
        super().__init__(f"the model {shown} does not exist; GET /v1/models lists the models (one per index)")


def model_id(index: str) -> str:
    return MODEL_PREFIX + index


def index_of_model(model: str | None) -> str | None:
    """The index a ``citeline/<index>`` model names; None for any other model string."""
    if model is None or not model.startswith(MODEL_PREFIX):
        return None
    return model[len(MODEL_PREFIX) :]


def chosen_index(model: str | None, index: str | None, names: Callable[[], Sequence[str]], default: str) -> str:
    """The index a chat request answers from: the one its model names (which must exist, and agree
    with the ``index`` extension when both are given), else its ``index``, else ``default``."""
    named = index_of_model(model)
    if named is None:
        return index or default
    if named not in names():
        raise UnknownModelError(model or "")
    if index is not None and index != named:
        raise RequestError(f"the model names index {named!r}, the index field {index[:120]!r}",
                           title="Conflicting index")  # fmt: skip
    return named


class ChatTurn(msgspec.Struct):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return " ".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(LiveOptions, kw_only=True):
    """The OpenAI chat request; fields citeline has no use for (``top_p``, ``user``...) are ignored.
    citeline's live-page options (``urls``, ``sources``, ``search``, ``recheck``) are extensions."""

    messages: Annotated[list[ChatTurn], msgspec.Meta(min_length=1)]
    model: str | None = None
    """``citeline/<index>`` chooses the index; any other value is accepted and ignored."""
    stream: bool = False
    index: str | None = None
    """citeline extension: the index to answer from."""
    policy: Literal["strict", "flag"] = "strict"
    """citeline extension: what to do with unsupported sentences."""
    top_k: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None


REWRITE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation:"
    " replace pronouns and references with what they refer to. Reply with the rewritten question only."
)


def conversation(request: ChatRequest) -> tuple[str, list[tuple[str, str]]]:
    """(last user question, earlier user/assistant turns) of a chat request."""
    turns: list[tuple[str, str]] = [
        (t.role, t.text().strip()) for t in request.messages if t.role in ("user", "assistant") and t.text()
    ]
    if not turns or turns[-1][0] != "user":
        raise ValueError("the conversation must end with a user message")
    return turns[-1][1], turns[:-1]


def rewrite_messages(question: str, history: Sequence[tuple[str, str]], *, max_turns: int = 6) -> list[ChatMessage]:
    lines = [f"{role}: {' '.join(text.split())[:600]}" for role, text in history[-max_turns:]]
    prompt = "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}\n\nStandalone question:"
    return [ChatMessage("system", REWRITE_SYSTEM), ChatMessage("user", prompt)]


def standalone_question(generator: Generator, question: str, history: Sequence[tuple[str, str]]) -> str:
    """The last question made self-contained; the question itself when there is no history."""
    if not any(role == "user" for role, _ in history):
        return question
    result = generator.generate(rewrite_messages(question, history), max_new_tokens=48)
    rewritten = result.text.strip().strip('"').splitlines()[0].strip() if result.text.strip() else ""
    # A rewrite that lost the question (empty, or a rambling answer instead) is worse than none.
    if not rewritten or len(rewritten) > 3 * len(question) + 200:
        return question
    return rewritten


def sentence_piece(sentence: AnswerSentence) -> str:
    """A sentence as the chat content shows it: its text and ``[n]`` markers (sentences are joined
    by one space)."""
    marks = "".join(f"[{i}]" for i in sentence.citations)
    if sentence.text.startswith("```"):
        return f"\n{sentence.text}\n{marks}"
    return sentence.text + (" " + marks if marks else "")


def annotated_content(answer: Answer) -> tuple[str, list[dict[str, Any]]]:
    """The answer text with ``[n]`` markers, and one url_citation per cited sentence and source.
    The answer's notices (a cited page changed since indexing...) follow as a last paragraph, as a
    chat UI shows only the content."""
    notes = "".join(f"\n\nNote: {notice}" for notice in answer.notices)
    if answer.abstained:
        return answer.answer + notes, []
    by_id = {c.id: c for c in answer.citations}
    parts: list[str] = []
    annotations: list[dict[str, Any]] = []
    position = 0
    for sentence in answer.sentences:
        text = sentence.text
        piece = sentence_piece(sentence)
        start = position + (1 if parts else 0)
        parts.append(piece)
        position = start + len(piece)
        for cid in sentence.citations:
            citation = by_id[cid]
            annotations.append(
                {
                    "type": "url_citation",
                    "url_citation": {
                        "url": citation.fragment_url,
                        "title": citation.title,
                        "start_index": start,
                        "end_index": start + len(text),
                    },
                }
            )
    return " ".join(parts) + notes, annotations


def completion(answer: Answer, *, model: str, standalone: str, request_id: str | None = None) -> dict[str, Any]:
    content, annotations = annotated_content(answer)
    return {
        "id": request_id or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "annotations": annotations, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
        "citeline": _extra(answer, standalone),
    }


def chunk(
    request_id: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` object."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [choice], **extra}  # fmt: skip


def completion_chunks(
    answer: Answer, *, model: str, standalone: str, request_id: str, words_per_chunk: int = 4, streamed: str = ""
) -> list[dict[str, Any]]:
    """The same completion as ``chat.completion.chunk`` objects: role, content pieces, then the
    annotations with the finish reason (clients accumulate ``delta.annotations``).

    ``streamed`` is the content already sent (with the role) as sentences were verified: only what
    follows it is sent. It is always the start of the content; were it not, the whole content
    follows rather than a piece that would not fit."""
    content, annotations = annotated_content(answer)
    chunks = [] if streamed else [chunk(request_id, model, {"role": "assistant", "content": ""})]
    content = content.removeprefix(streamed)
    words = re.split(r"(?<=\s)", content) if content else []
    chunks.extend(
        chunk(request_id, model, {"content": "".join(words[i : i + words_per_chunk])})
        for i in range(0, len(words), words_per_chunk)
    )
    chunks.append(
        chunk(
            request_id,
            model,
            {"annotations": annotations},
            "stop",
            usage=_usage(answer),
            citeline=_extra(answer, standalone),
        )
    )
    return chunks


def _usage(answer: Answer) -> dict[str, int]:
    prompt, completion_tokens = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def _extra(answer: Answer, standalone: str) -> dict[str, Any]:
    payload: dict[str, Any] = msgspec.to_builtins(answer)
    payload["standalone_question"] = standalone
    for key in ("retrieved", "candidates"):
        payload.pop(key, None)
    return payload
