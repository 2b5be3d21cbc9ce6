"""citeline.ingest.pacing: per-host turns and back-off."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from citeline.ingest.pacing import HostPacer
from citeline.ingest.robots import RobotsCache
from tests.ingest.polite import UA, FakeClock, robots_client

# --- pacing and back-off ------------------------------------------------------------------------


async def test_pacer_spaces_requests_per_host() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep)
    assert await pacer.wait("https://a.test/1") == 0
    assert await pacer.wait("https://a.test/2") == 1.0
    assert await pacer.wait("https://b.test/1") == 0  # hosts are paced apart
    clock.now += 0.25
    assert await pacer.wait("https://a.test/3") == 0.75
    clock.now += 5
    assert await pacer.wait("http://a.test:8080/4") == 0  # same host name, long enough ago
    assert clock.slept == [1.0, 0.75]


async def test_concurrent_waiters_get_distinct_turns() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    pacer = HostPacer(min_interval=0.5, clock=lambda: 0.0, sleep=record)
    await asyncio.gather(*(pacer.wait(f"https://a.test/{i}") for i in range(4)))
    assert sorted(slept) == [0.5, 1.0, 1.5]


async def test_pacer_honours_a_larger_crawl_delay() -> None:
    clock = FakeClock()
    client, _ = robots_client()
    async with client:
        pacer = HostPacer(robots=RobotsCache(client, UA), clock=clock, sleep=clock.sleep)
        await pacer.wait("https://site.test/1")
        assert await pacer.wait("https://site.test/2") == 3.5


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    clock = FakeClock()
    full = HostPacer(base_backoff=1.0, max_backoff=60.0, clock=clock, rand=lambda: 1.0)
    assert [full.backoff("https://a.test/", attempt) for attempt in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    half = HostPacer(base_backoff=1.0, clock=clock, rand=lambda: 0.5)
    assert half.backoff("https://a.test/", 3) == 4.0
    assert half.backoff("https://a.test/", 10_000) == 30.0  # no overflow on absurd attempt counts


def test_backoff_honours_retry_after() -> None:
    clock = FakeClock()
    wall = 1_700_000_000.0
    pacer = HostPacer(max_backoff=60.0, clock=clock, wall_clock=lambda: wall, rand=lambda: 1.0)
    assert pacer.backoff("https://a.test/", 0, "7") == 7.0
    in_20_s = email.utils.formatdate(wall + 20, usegmt=True)
    assert pacer.backoff("https://a.test/", 0, in_20_s) == pytest.approx(20.0)
    assert pacer.backoff("https://a.test/", 0, "3600") == 60.0  # capped
    assert pacer.backoff("https://a.test/", 2, "soon") == 4.0  # unreadable: exponential


async def test_backoff_pauses_the_host_for_every_caller() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, wall_clock=lambda: 0.0)
    await pacer.wait("https://a.test/1")
    pacer.backoff("https://a.test/1", 0, "10")
    assert await pacer.wait("https://a.test/other") == 10.0
    assert await pacer.wait("https://b.test/") == 0


async def test_pacer_remembers_a_bounded_number_of_hosts() -> None:
    clock = FakeClock()
    pacer = HostPacer(min_interval=1.0, clock=clock, sleep=clock.sleep, max_hosts=2)
    for n in range(100):
        await pacer.wait(f"https://h{n}.test/")
    assert len(pacer) == 2
    await pacer.wait("https://h99.test/again")  # the most recent hosts keep their turns
    assert clock.slept == [1.0]
