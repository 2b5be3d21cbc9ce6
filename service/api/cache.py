"""Answers to repeated questions, kept while the index they came from is unchanged.

An answer depends on the question, the index's content and the request's options; the generator
is deterministic for the first candidate and seeded for the others. So the key is exactly those,
with the index's store generation standing for its content: any committed change to the index
(an ingest, a removal) makes the old answers unreachable, and they age out of the LRU.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from cachetools import LRUCache

from citeline.service.answering import Answer

CacheKey = tuple[Hashable, ...]


def cache_key(index_name: str, generation: int, question: str, *options: Hashable) -> CacheKey:
    """Questions that differ only in case and spacing share an entry."""
    return (index_name, generation, " ".join(question.lower().split()), *options)


class AnswerCache:
    """A thread-safe LRU of answers (``cachetools``, which is not thread-safe alone); ``max_entries``
    0 turns it off."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: LRUCache[CacheKey, Answer] = LRUCache(maxsize=max(max_entries, 1))
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> Answer | None:
        with self._lock:
            answer = self._entries.get(key)
            if answer is None:
                self.misses += 1
                return None
            self.hits += 1
            return answer

    def put(self, key: CacheKey, answer: Answer) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = answer

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
