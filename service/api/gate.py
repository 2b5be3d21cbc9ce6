"""One generation at a time, a bounded queue behind it, and a clear 503 past the bound.

Two CPU cores run one generation at a good speed; two at once run each at half speed or worse and
both callers wait longer. So requests that need the generator take turns. A request that would
wait behind more than ``max_waiting`` others is refused at once with 503 and a ``Retry-After``
estimated from recent generation times, instead of hanging until some proxy times it out.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citeline.service.exceptions import BusyError


class GenerationGate:
    """An async mutex that counts and bounds its waiters."""

    def __init__(self, max_waiting: int = 8, *, default_seconds: float = 6.0) -> None:
        self.max_waiting = max_waiting
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._recent: deque[float] = deque(maxlen=20)
        self._default_seconds = default_seconds

    @property
    def waiting(self) -> int:
        """Requests queued for the generator, not counting the one running."""
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue times the typical generation."""
        typical = sorted(self._recent)[len(self._recent) // 2] if self._recent else self._default_seconds
        return max(1, math.ceil(typical * (self._waiting + 1)))

    def record(self, seconds: float) -> None:
        self._recent.append(seconds)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for the generator; raise BusyError when the queue is full."""
        if self._lock.locked() and self._waiting >= self.max_waiting:
            raise BusyError(f"{self._waiting} requests are already waiting for the generator", self.retry_after())
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()
