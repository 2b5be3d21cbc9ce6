"""citeline.ingest.retries: Retry-After and the 429/503 retry loop."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from citeline.ingest import parse_retry_after
from citeline.ingest.pacing import HostPacer
from citeline.ingest.retries import fetch_with_retries
from tests.ingest.polite import FakeClock


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 -0000", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90.0)
    for bad in (None, "", "-5", "1.5", "tomorrow", "Mon, 99 Foo 2024"):
        assert parse_retry_after(bad, now=now) is None


def test_parse_retry_after_measures_a_date_from_the_wall_clock_by_default() -> None:
    """The form the service calls: the header value alone."""
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert 3590 < (parse_retry_after(later) or 0) <= 3600


def responses(
    *statuses: int, retry_after: str | None = None
) -> tuple[Callable[[], Awaitable[httpx.Response]], list[int]]:
    sent: list[int] = []
    queue = list(statuses)

    async def send() -> httpx.Response:
        status = queue.pop(0)
        sent.append(status)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return httpx.Response(status, headers=headers)

    return send, sent


async def test_fetch_with_retries_retries_then_succeeds() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, rand=lambda: 1.0)
    send, sent = responses(503, 429, 200)
    response = await fetch_with_retries(send, "https://a.test/p", pacer)
    assert response.status_code == 200
    assert sent == [503, 429, 200]
    assert clock.slept == [1.0, 2.0]  # the back-off of each attempt (longer than the 1 s spacing)


async def test_fetch_with_retries_gives_up_after_max() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, rand=lambda: 1.0, wall_clock=lambda: 0.0)
    send, sent = responses(503, 503, 503, 503, 200, retry_after="5")
    response = await fetch_with_retries(send, "https://a.test/p", pacer, max_retries=3)
    assert response.status_code == 503
    assert sent == [503, 503, 503, 503]
    assert clock.slept == [5.0, 5.0, 5.0]


async def test_fetch_with_retries_does_not_pass_over_a_long_retry_after() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, wall_clock=lambda: 0.0, max_backoff=60)
    send, sent = responses(429, 200, retry_after="3600")
    response = await fetch_with_retries(send, "https://a.test/p", pacer)
    assert response.status_code == 429
    assert sent == [429]


async def test_fetch_with_retries_passes_other_statuses_through() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep)
    send, sent = responses(404)
    assert (await fetch_with_retries(send, "https://a.test/p", pacer)).status_code == 404
    assert sent == [404]
