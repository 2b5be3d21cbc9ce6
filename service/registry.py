"""Read-only access to the indexes of a data directory, shared by all requests."""

from __future__ import annotations

import threading
from pathlib import Path

from indexes import PassageIndex, VectorBackend, list_indexes, validate_index_name


class IndexRegistry:
    """Opens indexes on first use and reopens one when an ingest has changed it since.

    A reopen reads the store's current generation, so answers come from the last committed
    pages (never half-written ones) without restarting the service.
    """

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
        self._open: dict[str, tuple[int, PassageIndex]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list_indexes(self._data_dir)

    def get(self, name: str) -> PassageIndex:
        """Raise IndexNotFoundError for an unknown name, EmbedderMismatchError for a foreign index."""
        validate_index_name(name)
        with self._lock:
            cached = self._open.get(name)
            if cached is not None:
                generation, index = cached
                if index.generation() == generation:
                    return index
                index.close()
            index = PassageIndex.open(
                self._data_dir, name, read_only=True, vector_backend=self._vector_backend, qdrant_url=self._qdrant_url
            )
            index.check_embedder(self._embedding_model, self._dimension)
            self._open[name] = (index.generation(), index)
            return index

    def close(self) -> None:
        with self._lock:
            for _, index in self._open.values():
                index.close()
            self._open.clear()
