"""Per-host pacing: :class:`HostPacer` spaces requests to one host (robots.txt Crawl-delay included)
and pauses the host after a 429/503 for the back-off :mod:`ingest.retries` asks."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cachetools import LRUCache

from citeline.ingest._clock import Clock, Sleep
from citeline.ingest.retries import parse_retry_after
from citeline.ingest.robots import RobotsCache

MAX_HOSTS = 10_000
"""Hosts a :class:`HostPacer` remembers turns for; the least recently used go first."""


@dataclass(slots=True)
class _HostTurns:
    last_start: float | None = None
    not_before: float = -math.inf


class HostPacer:
    """Spaces requests to one host at least ``min_interval`` seconds apart (or the robots Crawl-delay).

    :meth:`wait` hands out turns in the order it is called; a turn is reserved before sleeping, so
    concurrent callers never share one. :meth:`backoff` pauses the whole host after a 429/503.
    Hosts are keyed by host name (any scheme or port); the turns of at most ``max_hosts`` hosts are
    remembered, the least recently used forgotten first (by then its turn is long past).
    """

    def __init__(
        self,
        *,
        min_interval: float = 1.0,
        robots: RobotsCache | None = None,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        max_hosts: int = MAX_HOSTS,
    ) -> None:
        if max_hosts < 1:
            raise ValueError("max_hosts must be at least 1")
        self.min_interval = min_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._robots = robots
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._hosts: LRUCache[str, _HostTurns] = LRUCache(maxsize=max_hosts)

    def __len__(self) -> int:
        return len(self._hosts)

    def _turns(self, url: str) -> _HostTurns:
        host = urlsplit(url).hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        turns = self._hosts.get(host)  # a hit makes the host the most recently used
        if turns is None:
            turns = self._hosts[host] = _HostTurns()  # the least recently used host goes when full
        return turns

    async def interval(self, url: str) -> float:
        """Seconds between two requests to ``url``'s host: ``min_interval`` or robots.txt's Crawl-delay."""
        if self._robots is None:
            return self.min_interval
        return await self._robots.effective_delay(url, self.min_interval)

    async def wait(self, url: str) -> float:
        """Sleep until it is this request's turn on ``url``'s host; return the seconds slept."""
        interval = await self.interval(url)
        turns = self._turns(url)
        now = self._clock()
        start = max(now, turns.not_before)
        if turns.last_start is not None:
            start = max(start, turns.last_start + interval)
        turns.last_start = start
        delay = start - now
        if delay > 0:
            await self._sleep(delay)
        return max(delay, 0.0)

    def retry_after(self, value: str | None) -> float | None:
        """Seconds a ``Retry-After`` header value asks for, measured on this pacer's wall clock."""
        return parse_retry_after(value, now=self._wall_clock())

    def backoff(self, url: str, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` of a request that got 429 or 503.

        A readable ``Retry-After`` is honoured as given; otherwise exponential back-off with full jitter,
        ``random() * base_backoff * 2**attempt``. Either is capped at ``max_backoff``. The host is paused
        for that long: the next :meth:`wait` on it, by any caller, sleeps until then.
        """
        wanted = self.retry_after(retry_after)
        if wanted is None:
            delay = self._rand() * min(self.max_backoff, self.base_backoff * 2.0 ** min(max(attempt, 0), 62))
        else:
            delay = min(wanted, self.max_backoff)
        turns = self._turns(url)
        turns.not_before = max(turns.not_before, self._clock() + delay)
        return delay
