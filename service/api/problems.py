"""Domain errors as RFC 9457 problem details: the one place they are mapped, for plain responses and for
streams (an error after a stream started becomes an ``error`` event with the same body).

The OpenAI-compatible routes (``/v1/models``, ``/v1/chat/completions``) render the same problem in
OpenAI's error shape, ``{"error": {"message", "type", "code", "param"}}`` with the same status, since
the official SDKs and the chat UIs built on them read that body (and pick the exception class by
the status): :func:`openai_exception_handlers` is what those routes register; the status and title
still come from :func:`problem_map`.
"""

import json
import re
from collections.abc import Callable
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsException,
)
from litestar.response import ServerSentEventMessage

from citeline.indexes import (
    CitelineError,
    CitelineIndexError,
    EmbedderMismatchError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from citeline.service.api import metrics
from citeline.service.exceptions import (
    AccessError,
    BusyError,
    CitelineServiceError,
    GenerationError,
    ModelNotPreparedError,
    NotReadyError,
    RateLimitedError,
    RequestError,
)

log = structlog.get_logger("citeline.service")


def problem_map() -> dict[type[Exception], Callable[[Any], ProblemDetailsException]]:
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

    def invalid(exc: RequestError) -> ProblemDetailsException:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, NotReadyError) else None
        return ProblemDetailsException(status_code=exc.status, title=exc.title, detail=str(exc), headers=headers)

    return {
        BusyError: busy,
        RequestError: invalid,
        AccessError: refused,
        InvalidIndexNameError: problem(422, "Invalid index name"),
        IndexNotFoundError: problem(404, "Unknown index"),
        EmbedderMismatchError: problem(409, "Index built with another embedder"),
        ModelNotPreparedError: problem(503, "Model not prepared"),
        GenerationError: problem(503, "Generation failed"),
        CitelineIndexError: problem(500, "Index error"),
        CitelineServiceError: problem(500, "Service error"),
        CitelineError: problem(500, "Internal error"),
    }


PROBLEMS = problem_map()


def problem_for(exc: Exception) -> ProblemDetailsException:
    """The problem details a plain response would carry for ``exc`` (500 for an unexpected error)."""
    if isinstance(exc, ProblemDetailsException):
        return exc
    for kind in type(exc).__mro__:
        convert = PROBLEMS.get(kind)
        if convert is not None:
            return convert(exc)
    if isinstance(exc, HTTPException):
        return ProblemDetailsException(
            status_code=exc.status_code, title=exc.detail, extra=exc.extra, headers=exc.headers
        )
    return ProblemDetailsException(
        status_code=500, title="Internal error", detail="the answer failed; the service log has the details"
    )


def problem_event(exc: Exception, *, event: str | None = "error") -> ServerSentEventMessage:
    """An error after a stream started, as an event: the same problem details a plain response
    would carry (its status is already sent as 200), logged like one and never re-raised, so the
    client reads why instead of a dropped connection."""
    problem = problem_for(exc)
    body: dict[str, Any] = {"status": problem.status_code}
    if problem.title is not None:
        body["title"] = problem.title
    if problem.detail:
        body["detail"] = problem.detail
    if isinstance(problem.extra, dict):
        body.update(problem.extra)
    if _unexpected(exc):
        log.error("stream failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    else:
        log.info("stream ended with a problem", status=problem.status_code, title=problem.title)
    if event is None:
        # OpenAI-style clients read a chunk with an ``error`` member as the stream's failure.
        body.update(openai_error(exc, problem))
    return ServerSentEventMessage(event=event, data=json.dumps(body))


def _unexpected(exc: Exception) -> bool:
    return not isinstance(exc, HTTPException) and not any(kind in PROBLEMS for kind in type(exc).__mro__)


_OPENAI_CODES = {"Unknown model": "model_not_found", "Unauthorized": "invalid_api_key",
                 "Too many requests": "rate_limit_exceeded"}  # fmt: skip
"""The codes OpenAI's own API sends for the same failures; other domain errors get their title as a code."""


def _openai_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(exc: Exception, problem: ProblemDetailsException | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` in OpenAI's shape for ``exc``, from the problem details it maps to.

    ``code`` is OpenAI's code where one exists (``model_not_found``, ``invalid_api_key``...), a
    domain error's title as a slug otherwise, and null for the framework's own errors (a body that
    fails validation); ``param`` names the request field at fault where that is known."""
    problem = problem or problem_for(exc)
    title = problem.title or ""
    message = problem.detail or title
    param = getattr(exc, "param", None)
    if isinstance(problem.extra, list) and problem.extra:
        # Litestar's validation errors: [{"message": ..., "key": ..., "source": ...}, ...]
        first = problem.extra[0]
        if isinstance(first, dict):
            message = f"{title}: {first.get('message', '')}".rstrip(": ")
            param = param or first.get("key")
    code = _OPENAI_CODES.get(title)
    if code is None and isinstance(exc, CitelineError) and title:
        code = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or None
    return {"error": {"message": message, "type": _openai_type(problem.status_code), "code": code,
                      "param": param if isinstance(param, str) else None}}  # fmt: skip


def openai_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A plain response of an OpenAI-compatible route: :func:`openai_error` with the problem's status
    and headers (``Retry-After``, ``WWW-Authenticate``)."""
    problem = problem_for(exc)
    if _unexpected(exc):
        log.error("request failed", path=request.url.path, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    return Response(openai_error(exc, problem), status_code=problem.status_code, headers=problem.headers,
                    media_type="application/json")  # fmt: skip


def openai_exception_handlers() -> dict[int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]]:
    """The exception handlers an OpenAI-compatible route registers. Litestar looks a handler up by the
    exception's classes across the app's and the route's handlers together, so every class the
    app maps to problem details is taken over here too, not only ``Exception``."""
    kinds: list[int | type[Exception]] = [*PROBLEMS, ProblemDetailsException, HTTPException, Exception]
    return dict.fromkeys(kinds, openai_error_response)
