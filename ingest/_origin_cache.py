"""One small file per origin (robots.txt, tdmrep.json): fetched once through the caller's client with a
cap, shared by every caller, and kept in a bounded cache until it expires.

Not cachetools: its caches bound entries or size, not both, and hold no per-key lock while a load is awaited.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from citeline.ingest._clock import Clock
from citeline.ingest.bounded import ACCEPT_HEADERS, read_prefix, send_following

DAY = 24 * 3600.0
MAX_ORIGINS = 4096
"""Origins whose robots.txt (or tdmrep.json) a cache keeps at once; the least recently used go first."""
CACHE_MAX_BYTES = 64 << 20
"""Estimated memory a robots.txt or tdmrep.json cache may hold before it drops the least recently used."""
ENTRY_BYTES = 1024
"""Estimated bytes of one cache entry, besides its parsed file."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_T = TypeVar("_T")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, default port left out.

    Raises ValueError for anything that is not an absolute http(s) URL.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class Body:
    status: int
    url: str
    content: bytes
    truncated: bool

    @property
    def text(self) -> str:
        """The content as UTF-8, which robots.txt (RFC 9309) and tdmrep.json (JSON) must be, BOM dropped."""
        return self.content.decode("utf-8", errors="replace").removeprefix("\ufeff")


async def get_capped(client: httpx.AsyncClient, url: str, *, max_bytes: int, limit_s: float) -> Body:
    """GET ``url`` through ``client`` following redirects; read at most ``max_bytes`` of a 2xx body, decoded.

    Raises ``FetchError`` for a body in an encoding that cannot be read with a bound (``ingest.bounded``).
    """
    async with asyncio.timeout(limit_s):
        response = await send_following(
            lambda request: client.send(request, stream=True, follow_redirects=False),
            client.build_request("GET", url, headers=ACCEPT_HEADERS),
            max_redirects=client.max_redirects,
        )
        try:
            body, truncated = await read_prefix(response, max_bytes, url) if response.is_success else (b"", False)
            return Body(response.status_code, str(response.url), body, truncated)
        finally:
            await response.aclose()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[_T]):
    value: _T
    expires: float
    size: int


@dataclass(slots=True)
class _Loading:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiters: int = 0


class OriginCache(Generic[_T]):
    """One value per origin, loaded once however many callers ask at the same time, kept until it expires.

    Bounded: past ``max_entries`` origins or ``max_bytes`` (as the loader estimates each value) the least
    recently used are dropped, so a crawl over many origins, or origins serving huge files, cannot grow it
    without limit. The newest entry is always kept. A per-origin lock exists only while a load is awaited.
    """

    def __init__(self, clock: Clock, *, max_entries: int = MAX_ORIGINS, max_bytes: int = CACHE_MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a cache needs room for at least one entry")
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry[_T]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, _Loading] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The estimated bytes the cached values take."""
        return self._bytes

    @property
    def loading(self) -> int:
        """Origins being loaded now (each holds a lock)."""
        return len(self._loading)

    def _fresh(self, origin: str) -> _Entry[_T] | None:
        entry = self._entries.get(origin)
        if entry is None or self._clock() >= entry.expires:
            return None
        self._entries.move_to_end(origin)
        return entry

    def _store(self, origin: str, entry: _Entry[_T]) -> None:
        if (old := self._entries.pop(origin, None)) is not None:
            self._bytes -= old.size
        self._entries[origin] = entry
        self._bytes += entry.size
        while len(self._entries) > 1 and (len(self._entries) > self._max_entries or self._bytes > self._max_bytes):
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.size

    async def get(self, origin: str, load: Callable[[], Awaitable[tuple[_T, float, int]]]) -> _T:
        """The cached value, or ``load()``'s (value, seconds to keep it, estimated bytes) under the origin's lock."""
        if (entry := self._fresh(origin)) is not None:
            return entry.value
        loading = self._loading.setdefault(origin, _Loading())
        loading.waiters += 1
        try:
            async with loading.lock:
                if (entry := self._fresh(origin)) is None:
                    value, keep_for, size = await load()
                    entry = _Entry(value, self._clock() + keep_for, size)
                    self._store(origin, entry)
                return entry.value
        finally:
            loading.waiters -= 1
            if not loading.waiters:
                del self._loading[origin]
