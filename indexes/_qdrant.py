"""A :class:`~indexes.VectorStore` in Qdrant: embedded local mode under the index folder, or a server.

One collection per index, named by the caller (:class:`~indexes.PassageIndex` gives each index a
name of its own, so two data directories can share a server); point ids are the passage ids, each point carries its
``page_id`` as payload, and the distance is cosine (our vectors are normalised already, so the
scores equal FAISS's inner products up to float rounding). ``qdrant-client`` is an optional
dependency (the ``qdrant`` extra), imported only when a store is used (hence the local imports).

Local mode (``path``) scans every vector per query and takes an exclusive lock on its folder, so
one process at a time may open it; it is meant for tests and small indexes (the client warns past
20k points). A server (``url``) indexes the vectors (HNSW) and gets a payload index on ``page_id``
so removing a page does not scan; local mode has no payload indexes (the client warns that they are
ignored), so none is created there.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from citeline.indexes._embedder import Vectors
from citeline.indexes._exceptions import EmbedderMismatchError, VectorStoreBusyError
from citeline.indexes._layout import QDRANT_DIR
from citeline.indexes._vectorstore import check_batch, query_row

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

PAGE_FIELD = "page_id"
"""The payload key holding a point's page id."""


class QdrantVectorStore:
    """The vectors of one index as a Qdrant collection; give exactly one of ``path`` and ``url``."""

    def __init__(
        self,
        collection: str,
        dimension: int,
        *,
        path: Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 512,
    ) -> None:
        from qdrant_client import QdrantClient

        if (path is None) == (url is None):
            raise ValueError("give a local path or a server url, not both or neither")
        self.collection = collection
        self.dimension = dimension
        self.batch_size = batch_size
        # One lock around the client: local mode is not safe to call from several threads at once.
        self._lock = threading.RLock()
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._client: QdrantClient = QdrantClient(path=str(path), force_disable_check_same_thread=True)
        else:
            self._client = QdrantClient(url=url, api_key=api_key)
        try:
            self._ensure_collection(index_pages=url is not None)
        except BaseException:
            self._client.close()  # local mode holds a lock on its folder until closed
            raise

    def _ensure_collection(self, *, index_pages: bool) -> None:
        from qdrant_client import models

        if not self._client.collection_exists(self.collection):
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dimension, distance=models.Distance.COSINE),
            )
            if index_pages:
                self._client.create_payload_index(
                    self.collection, PAGE_FIELD, field_schema=models.PayloadSchemaType.INTEGER, wait=True
                )
            return
        params = self._client.get_collection(self.collection).config.params.vectors
        if not isinstance(params, models.VectorParams) or params.size != self.dimension:
            raise EmbedderMismatchError(
                f"Qdrant collection {self.collection!r} does not hold one {self.dimension}-d vector per point"
            )
        if params.distance != models.Distance.COSINE:
            raise EmbedderMismatchError(f"Qdrant collection {self.collection!r} uses {params.distance}, not cosine")

    def add(self, ids: Sequence[int], vectors: Vectors, page_ids: Sequence[int]) -> None:
        from qdrant_client import models

        rows = check_batch(ids, vectors, page_ids, self.dimension)
        with self._lock:
            for start in range(0, len(rows), self.batch_size):
                end = start + self.batch_size
                self._client.upsert(
                    self.collection,
                    points=models.Batch(
                        ids=[int(i) for i in ids[start:end]],
                        vectors=rows[start:end].tolist(),
                        payloads=[{PAGE_FIELD: int(p)} for p in page_ids[start:end]],
                    ),
                    wait=True,
                )

    def remove(self, ids: Sequence[int]) -> None:
        from qdrant_client import models

        if not ids:
            return
        with self._lock:
            self._client.delete(
                self.collection, points_selector=models.PointIdsList(points=[int(i) for i in ids]), wait=True
            )

    def remove_page(self, page_id: int) -> None:
        from qdrant_client import models

        with self._lock:
            self._client.delete(
                self.collection,
                points_selector=models.FilterSelector(
                    filter=models.Filter(
                        must=[models.FieldCondition(key=PAGE_FIELD, match=models.MatchValue(value=page_id))]
                    )
                ),
                wait=True,
            )

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        row = query_row(vector, self.dimension)
        if k <= 0:
            return []
        with self._lock:
            points = self._client.query_points(
                self.collection,
                query=row[0].tolist(),
                limit=k,
                with_payload=False,
                with_vectors=False,
            ).points
        return [(int(p.id), float(p.score)) for p in points]

    def count(self) -> int:
        with self._lock:
            return int(self._client.count(self.collection, exact=True).count)

    def persist(self) -> None:
        """Nothing to do: a write returns once Qdrant stored it (``wait=True``; local mode commits each one)."""

    def close(self) -> None:
        with self._lock:
            self._client.close()


def open_index_collection(index_path: Path, dimension: int, *, collection: str, url: str | None) -> QdrantVectorStore:
    """The collection of the index at ``index_path``: embedded under its ``qdrant/`` folder, or on ``url``.

    Raises :class:`~indexes.VectorStoreBusyError` when another client (another process) holds the
    embedded folder: embedded Qdrant allows one per folder.
    """
    if url is not None:
        return QdrantVectorStore(collection, dimension, url=url)
    folder = index_path / QDRANT_DIR
    if _embedded_folder_held(folder):
        raise _busy_error(index_path)
    try:
        return QdrantVectorStore(collection, dimension, path=folder)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise _busy_error(index_path) from exc
        raise


def drop_collection(url: str, collection: str) -> None:
    """Delete one collection on a server (an index's own, before it is rebuilt)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url)
    try:
        client.delete_collection(collection)
    finally:
        client.close()


def _busy_error(index_path: Path) -> VectorStoreBusyError:
    return VectorStoreBusyError(
        f"index {index_path.name!r} keeps its vectors in embedded Qdrant ({index_path / QDRANT_DIR}), which"
        " another client (another process) has open: embedded Qdrant allows one per folder. Wait for it to"
        " finish, or run a Qdrant server and set qdrant_url"
    )


def _embedded_folder_held(folder: Path) -> bool:
    """Whether another client holds the embedded folder's lock (the one the Qdrant client takes)."""
    lock = folder / ".lock"
    if not lock.is_file():
        return False
    # Tried here first: the client fails fast too, but leaks its lock file handle when it does.
    with lock.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
