"""Pages fetched at question time, kept a short while with their vectors.

Not ``cachetools.TTLCache``: an expired page is still wanted, for its validators (a conditional GET).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from citeline.indexes import PageRecord, PassageRecord


@dataclass(slots=True)
class LivePage:
    """A fetched page, extracted and chunked; vectors are added as questions select passages."""

    record: PageRecord
    passages: list[PassageRecord]
    embed_texts: list[str]
    fetch_ms: float
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    checked_at: float = 0.0
    """Monotonic time of the last fetch or revalidation."""


class LivePageCache:
    """Recently fetched pages by the URL they were fetched from; thread-safe, LRU-bounded."""

    def __init__(self, ttl_s: float, max_pages: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_pages = max_pages
        self._clock = clock
        self._pages: OrderedDict[str, LivePage] = OrderedDict()
        self._unchanged: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def _fresh(self, checked_at: float) -> bool:
        return self._clock() - checked_at < self.ttl_s

    def get(self, key: str, *, fresh: bool = True) -> LivePage | None:
        """The cached page (only if checked within the TTL when ``fresh``)."""
        with self._lock:
            page = self._pages.get(key)
            if page is None or (fresh and not self._fresh(page.checked_at)):
                return None
            self._pages.move_to_end(key)
            return page

    def put(self, key: str, page: LivePage) -> None:
        if self.max_pages <= 0 or self.ttl_s <= 0:
            return
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def revalidated(self, key: str) -> None:
        """The server said 304: the cached page is current again."""
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                page.checked_at = self._clock()

    def note_unchanged(self, key: str, content_hash: str) -> None:
        """A stored page answered 304 to its validators: no need to ask again within the TTL."""
        if self.max_pages <= 0 or self.ttl_s <= 0:
            return
        with self._lock:
            self._unchanged[(key, content_hash)] = self._clock()
            while len(self._unchanged) > self.max_pages:
                self._unchanged.popitem(last=False)

    def unchanged_recently(self, key: str, content_hash: str) -> bool:
        with self._lock:
            at = self._unchanged.get((key, content_hash))
            return at is not None and self._fresh(at)
