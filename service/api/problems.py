"""Domain errors as RFC 9457 problem details: the one place they are mapped, for plain responses and for
streams (an error after a stream started becomes an ``error`` event with the same body).
"""

import json
from collections.abc import Callable
from typing import Any

import structlog
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsException,
)
from litestar.response import ServerSentEventMessage

from indexes import (
    CitelineError,
    CitelineIndexError,
    EmbedderMismatchError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from service.api import metrics
from service.exceptions import (
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
        return ProblemDetailsException(status_code=exc.status_code, title=exc.detail, extra=exc.extra)
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
    if not isinstance(exc, HTTPException) and not any(kind in PROBLEMS for kind in type(exc).__mro__):
        log.error("stream failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
    else:
        log.info("stream ended with a problem", status=problem.status_code, title=problem.title)
    if event is None:
        # OpenAI-style clients read a chunk with an ``error`` member as the stream's failure.
        body["error"] = {"message": problem.detail or problem.title, "type": problem.title, "code": problem.status_code}
    return ServerSentEventMessage(event=event, data=json.dumps(body))
