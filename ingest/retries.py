"""Retrying a request the server answered 429 or 503 (:func:`fetch_with_retries`), and the one
``Retry-After`` parser of every layer (:func:`parse_retry_after`, exported by ``ingest``).

Not stamina/tenacity: each try first waits the host's turn and a back-off pauses the host for every caller (pacing).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from citeline.ingest.pacing import HostPacer

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta-seconds or HTTP-date), or None if unreadable.

    Delta-seconds are digits only (RFC 9110 10.2.3: ``1.5`` or ``-1`` is unreadable). ``now`` is the
    wall-clock time an HTTP-date is measured from (default ``time.time()``); a date in the past gives 0.
    """
    if value is None or not (value := value.strip()):
        return None
    if re.fullmatch(r"\d+", value, flags=re.ASCII):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def fetch_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    url: str,
    pacer: HostPacer,
    *,
    max_retries: int = 3,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
) -> httpx.Response:
    """Wait ``url``'s turn and ``send()``; on 429/503 back off and send again, at most ``max_retries`` times.

    Returns the last response (the caller owns it and closes it): a success, another status, or the
    429/503 that ended the retries. A ``Retry-After`` longer than ``pacer.max_backoff`` ends them at once
    rather than asking again sooner than the server allowed. Exceptions from ``send`` propagate.
    """
    attempt = 0
    while True:
        await pacer.wait(url)
        response = await send()
        if response.status_code not in retry_statuses or attempt >= max_retries:
            return response
        retry_after = response.headers.get("retry-after")
        pacer.backoff(url, attempt, retry_after)
        wanted = pacer.retry_after(retry_after)
        if wanted is not None and wanted > pacer.max_backoff:
            return response
        await response.aclose()
        attempt += 1
