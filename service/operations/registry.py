"""Read-only access to the indexes of a data directory, shared by all requests.

Requests hold an index through a :class:`Lease` for as long as they use it (a streamed answer for
the stream's whole life). An index is kept open across ingest commits and catches up with them in
place (:meth:`PassageIndex.refresh` reads only the passages added and removed since); it is
replaced only when its store was replaced (removed and built again) or cannot be caught up. The
index it replaces is closed when its last lease ends, never under a request that still reads it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from citeline.indexes import PassageIndex, VectorBackend, list_indexes, validate_index_name


@dataclass(eq=False, slots=True)
class _Entry:
    index: PassageIndex
    leases: int = 0
    retired: bool = False
    """Replaced by a newer open of the same index: closed once ``leases`` reaches 0."""


class Lease:
    """One holder's use of an open index; :meth:`release` ends it (once, however often it is called)."""

    __slots__ = ("__weakref__", "_entry", "_registry")

    def __init__(self, registry: IndexRegistry, entry: _Entry) -> None:
        self._registry: IndexRegistry | None = registry
        self._entry = entry

    @property
    def index(self) -> PassageIndex:
        if self._registry is None:
            raise RuntimeError(f"the lease on index {self._entry.index.name!r} has ended")
        return self._entry.index

    def release(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            registry._release(self._entry)

    def release_with(self, holder: object) -> None:
        """End the lease when ``holder`` is garbage (a stream the server never started has no
        ``finally`` to run); :meth:`release` still ends it earlier."""
        weakref.finalize(holder, self.release)

    def __enter__(self) -> PassageIndex:
        return self.index

    def __exit__(self, *_: object) -> None:
        self.release()


def _release_unclaimed(acquired: asyncio.Future[Lease]) -> None:
    if not acquired.cancelled() and acquired.exception() is None:
        acquired.result().release()


class IndexRegistry:
    """Opens indexes on first use, keeps them caught up with ingest commits, and hands out leases."""

    def __init__(
        self,
        data_dir: Path,
        embedding_model: str,
        dimension: int,
        *,
        vector_backend: VectorBackend = "faiss",
        qdrant_url: str | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._vector_backend: VectorBackend = vector_backend
        self._qdrant_url = qdrant_url
        self._embedding_model = embedding_model
        self._dimension = dimension
        self._current: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        """Guards ``_current`` and every lease count: held for no I/O but closing a retired index."""
        self._opening: dict[str, threading.Lock] = {}
        """One per name: a slow open or catch-up of one index never holds up another's requests."""
        self._on_close: list[Callable[[PassageIndex], None]] = []

    def names(self) -> list[str]:
        return list_indexes(self._data_dir)

    def on_close(self, listener: Callable[[PassageIndex], None]) -> None:
        """Call ``listener`` with every index the registry closes (to drop what is kept for it)."""
        self._on_close.append(listener)

    def acquire(self, name: str) -> Lease:
        """A lease on the index, caught up with the last commit. Blocking (it may read the store):
        call it from a worker thread in async code, or use :meth:`alease`.

        Raises IndexNotFoundError for an unknown name, EmbedderMismatchError for a foreign index.
        """
        validate_index_name(name)
        with self._lock:
            opening = self._opening.setdefault(name, threading.Lock())
        with opening:
            with self._lock:
                entry = self._current.get(name)
            if entry is not None and not entry.index.refresh():
                self._retire(name, entry)
                entry = None
            if entry is None:
                entry = _Entry(self._open(name))
                with self._lock:
                    self._current[name] = entry
            with self._lock:
                entry.leases += 1
        return Lease(self, entry)

    @contextmanager
    def lease(self, name: str) -> Iterator[PassageIndex]:
        """``with registry.lease(name) as index:`` (blocking, see :meth:`acquire`)."""
        with self.acquire(name) as index:
            yield index

    async def aacquire(self, name: str) -> Lease:
        """:meth:`acquire` in a worker thread; a caller cancelled meanwhile leaks no lease."""
        future = asyncio.ensure_future(asyncio.to_thread(self.acquire, name))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_release_unclaimed)
            raise

    @asynccontextmanager
    async def alease(self, name: str) -> AsyncIterator[PassageIndex]:
        """``async with registry.alease(name) as index:``, acquired off the event loop."""
        with await self.aacquire(name) as index:
            yield index

    def _open(self, name: str) -> PassageIndex:
        return PassageIndex.open(
            self._data_dir,
            name,
            read_only=True,
            vector_backend=self._vector_backend,
            qdrant_url=self._qdrant_url,
            embedder=(self._embedding_model, self._dimension),
        )

    def _retire(self, name: str, entry: _Entry) -> None:
        with self._lock:
            if self._current.get(name) is entry:
                del self._current[name]
            entry.retired = True
            idle = entry.leases == 0
        if idle:
            self._close(entry.index)

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.leases -= 1
            idle = entry.retired and entry.leases == 0
        if idle:
            self._close(entry.index)

    def _close(self, index: PassageIndex) -> None:
        for listener in self._on_close:
            listener(index)
        index.close()

    def close(self) -> None:
        """Close every index now held by nobody; the others close as their last lease ends. A later
        :meth:`acquire` opens the index again (an app whose lifespan restarts keeps its registry)."""
        with self._lock:
            entries = list(self._current.items())
        for name, entry in entries:
            self._retire(name, entry)
