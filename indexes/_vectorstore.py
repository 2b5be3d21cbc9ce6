"""Where an index's vectors live: the :class:`VectorStore` interface and its FAISS backend.

A vector store holds one vector per passage, keyed by the passage id, and the id of the page the
passage belongs to, so a page's vectors can be removed at once. Scores are inner products of the
normalised vectors the embedders produce, so cosine similarities, best first. The SQLite passage
store stays the source of truth: a store that is missing or does not match it is rebuilt from it
(``source``), never the other way round.

Two backends behave the same under one contract (``tests/indexes/test_vectorstore_contract.py``),
and :class:`~indexes.PassageIndex` uses both only through it:

``faiss``   :class:`FaissVectorStore`, in process, the kinds of :mod:`indexes._vectors` chosen by size.
``qdrant``  :class:`~indexes.QdrantVectorStore` (``indexes._qdrant``), embedded local mode or a server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import faiss
import numpy as np
import numpy.typing as npt

from citeline.indexes._embedder import Vectors
from citeline.indexes._exceptions import EmbedderMismatchError, IndexCorruptError
from citeline.indexes._files import atomic_write
from citeline.indexes._layout import FAISS_FILE, QDRANT_DIR
from citeline.indexes._vectors import (
    FLAT,
    VectorIndexPolicy,
    VectorIndexSpec,
    configure_search,
    new_vector_index,
    spec_of,
    train_vector_index,
    write_vector_index,
)

VectorBackend = Literal["faiss", "qdrant"]
"""Which store holds an index's vectors: in-process FAISS files, or a Qdrant collection."""
VECTOR_BACKENDS: tuple[VectorBackend, ...] = ("faiss", "qdrant")

IdArray = npt.NDArray[np.int64]
VectorBatch = tuple[Sequence[int], Vectors, Sequence[int]]
"""``(passage ids, vectors, page ids)``: rows of the source of truth, as :meth:`VectorStore.add` takes them."""
VectorSource = Callable[[], Iterable[VectorBatch]]
"""Reads every stored vector anew on each call, in batches: what a store is rebuilt from."""
PageSource = Callable[[], Iterable[tuple[int, int]]]
"""Reads ``(passage id, page id)`` of every stored vector, in id order, without the vectors."""


@runtime_checkable
class VectorStore(Protocol):
    """The vectors of one index, keyed by passage id and tagged with their page id."""

    def add(self, ids: Sequence[int], vectors: Vectors, page_ids: Sequence[int]) -> None:
        """Store ``vectors[i]`` as passage ``ids[i]`` of page ``page_ids[i]``, replacing a vector of the same id."""
        ...

    def remove(self, ids: Sequence[int]) -> None:
        """Remove these passages' vectors; ids not stored are ignored."""
        ...

    def remove_page(self, page_id: int) -> None:
        """Remove the vectors of every passage of one page."""
        ...

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(passage id, cosine score)``, best first."""
        ...

    def count(self) -> int:
        """How many vectors the store holds."""
        ...

    def persist(self) -> None:
        """Make every change so far survive a reopen."""
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards."""
        ...


def check_batch(ids: Sequence[int], vectors: Vectors, page_ids: Sequence[int], dimension: int) -> Vectors:
    """The vectors as contiguous float32 rows, after checking that the three arguments line up."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or (len(array) and array.shape[1] != dimension):
        raise EmbedderMismatchError(f"vectors of shape {array.shape} do not fit a {dimension}-d store")
    if not len(ids) == len(page_ids) == len(array):
        raise ValueError(f"{len(ids)} ids, {len(array)} vectors and {len(page_ids)} page ids")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids in one batch")
    return array


def query_row(vector: Vectors, dimension: int) -> Vectors:
    """One query as a ``(1, dimension)`` float32 row."""
    row = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
    if row.shape[1] != dimension:
        raise EmbedderMismatchError(f"query has {row.shape[1]} dimensions, the store has {dimension}")
    return row


def pages_path(path: Path) -> Path:
    """Where a FAISS store keeps its page map, next to the FAISS file."""
    return path.with_name(path.name + ".pages.npy")


class FaissVectorStore:
    """A :class:`VectorStore` over a FAISS index file (Flat or IVF-SQ8 by size, see :mod:`indexes._vectors`).

    FAISS keeps only ids and vectors, so the page of each passage is kept beside it in memory. On
    its own the store persists that page map as ``<file>.pages.npy`` (``(n, 2)`` int64 rows of
    passage id, page id). Given ``pages`` (a :class:`~indexes.PassageIndex` passes the SQLite
    store's), the map is read from there instead and no ``.pages.npy`` is read or written: the FAISS
    file alone is the index's on-disk format, as it was before the store existed.

    The kind follows the count on :meth:`persist`, rebuilt from ``source``; without a source the
    kind stays what it is (the stored vectors cannot be read back exactly from IVF-SQ8 codes).
    Opening files that disagree (a crash between the two writes) rebuilds from ``source``, and
    raises :class:`~indexes.IndexCorruptError` without one. ``load=False`` skips the files and
    builds from ``source`` at once (its owner knows them to be stale).
    """

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        policy: VectorIndexPolicy | None = None,
        source: VectorSource | None = None,
        pages: PageSource | None = None,
        load: bool = True,
    ) -> None:
        self.path = path
        self.dimension = dimension
        self.policy = policy or VectorIndexPolicy()
        self._source = source
        self._pages = pages
        self._lock = threading.RLock()
        self._page_of: dict[int, int] = {}
        self._index: Any = new_vector_index(FLAT, dimension)
        if not (load and self._load()):
            if self._source is not None:
                self.rebuild()
            elif load and (self.path.exists() or pages_path(self.path).exists()):
                raise IndexCorruptError(
                    f"{self.path} and its page map disagree, and there is no source to rebuild from"
                )

    @classmethod
    def trained(
        cls,
        path: Path,
        dimension: int,
        spec: VectorIndexSpec,
        sample: Vectors,
        *,
        policy: VectorIndexPolicy | None = None,
    ) -> FaissVectorStore:
        """An empty store of ``spec``, trained on ``sample`` (an IVF index needs training before its first add).

        For a store filled by :meth:`add` alone: without a source, the kind stays ``spec``.
        """
        store = cls(path, dimension, policy=policy, load=False)
        index = new_vector_index(spec, dimension)
        if not index.is_trained:
            train_vector_index(index, np.ascontiguousarray(sample, dtype=np.float32), seed=store.policy.seed)
        configure_search(index, store.policy)
        store._index = index
        return store

    @property
    def spec(self) -> VectorIndexSpec:
        """The kind of the live FAISS index."""
        return spec_of(self._index) or FLAT

    @property
    def faiss_index(self) -> Any:
        """The live FAISS index, for inspection (``nprobe``, ids); change it only through the store."""
        return self._index

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def _read_pages(self) -> npt.NDArray[np.int64] | None:
        if self._pages is not None:
            return np.array(list(self._pages()), dtype=np.int64).reshape(-1, 2)
        try:
            rows = np.load(pages_path(self.path), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return rows if rows.ndim == 2 and rows.shape[1:] == (2,) else None

    def _load(self) -> bool:
        """Read the files; False when missing, unreadable or not matching each other."""
        if not self.path.is_file():
            return False
        try:
            index = faiss.read_index(str(self.path))
        except (OSError, RuntimeError):
            return False
        # read_index already returns the concrete class; wrapping it again with downcast_index
        # would let the original owner free the C++ object. Any kind this version builds is
        # served as it is: only a rebuild changes the kind.
        if index.d != self.dimension and self._source is None:
            raise EmbedderMismatchError(f"{self.path} holds {index.d}-d vectors, not {self.dimension}-d")
        if spec_of(index) is None or index.d != self.dimension:
            return False
        rows = self._read_pages()
        if rows is None or index.ntotal != len(rows):
            return False
        configure_search(index, self.policy)
        self._index = index
        self._set_pages(rows[:, 0].tolist(), rows[:, 1].tolist())
        return True

    def _set_pages(self, ids: Iterable[int], page_ids: Iterable[int]) -> None:
        self._page_of = dict(zip(ids, page_ids, strict=True))

    def rebuild(self, spec: VectorIndexSpec | None = None) -> None:
        """Rebuild from ``source`` as ``spec``, or as the kind the policy gives the count.

        Reads the ids first (from ``pages`` when given, which reads no vectors), then for IVF a
        seeded training sample, then the vectors, so the vectors never sit in memory all at once.
        """
        if self._source is None:
            raise RuntimeError("this FAISS store has no source to rebuild from")
        with self._lock:
            if self._pages is not None:
                rows = list(self._pages())
                ids = [i for i, _ in rows]
                pages = [p for _, p in rows]
            else:
                ids, pages = [], []
                for batch_ids, _, batch_pages in self._source():
                    ids.extend(int(i) for i in batch_ids)
                    pages.extend(int(p) for p in batch_pages)
            spec = spec or self.policy.choose(len(ids))
            index = new_vector_index(spec, self.dimension)
            if not index.is_trained:
                rng = np.random.default_rng(self.policy.seed)
                chosen = np.sort(
                    rng.choice(np.asarray(ids, dtype=np.int64), self.policy.train_size(spec.nlist, len(ids)), False)
                )
                sample = [
                    check_batch(batch_ids, vectors, batch_pages, self.dimension)[np.isin(batch_ids, chosen)]
                    for batch_ids, vectors, batch_pages in self._source()
                ]
                train_vector_index(index, np.vstack(sample), seed=self.policy.seed)
            added: dict[int, int] = {}
            for batch_ids, vectors, batch_pages in self._source():
                rows_ = check_batch(batch_ids, vectors, batch_pages, self.dimension)
                if len(rows_):
                    index.add_with_ids(rows_, np.asarray(batch_ids, dtype=np.int64))
                    added.update(zip((int(i) for i in batch_ids), (int(p) for p in batch_pages), strict=True))
            configure_search(index, self.policy)
            self._index = index
            # What was added, not what was counted first: a writer may have committed in between.
            self._page_of = added

    def add(self, ids: Sequence[int], vectors: Vectors, page_ids: Sequence[int]) -> None:
        rows = check_batch(ids, vectors, page_ids, self.dimension)
        if not len(rows):
            return
        with self._lock:
            # FAISS would keep both copies of a re-added id; the contract is to replace it.
            self.remove([i for i in ids if i in self._page_of])
            self._index.add_with_ids(rows, np.asarray(ids, dtype=np.int64))
            for passage_id, page_id in zip(ids, page_ids, strict=True):
                self._page_of[int(passage_id)] = int(page_id)

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._page_of]
            if not present:
                return
            self._index.remove_ids(np.asarray(present, dtype=np.int64))
            for passage_id in present:
                del self._page_of[passage_id]

    def remove_page(self, page_id: int) -> None:
        # A scan of the page map: no caller removes vectors by page often enough to pay for a
        # second map (page -> ids) in memory on every index.
        with self._lock:
            self.remove([i for i, page in self._page_of.items() if page == page_id])

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        row = query_row(vector, self.dimension)
        with self._lock:
            limit = min(k, int(self._index.ntotal))
            if limit <= 0:
                return []
            scores, found = self._index.search(row, limit)
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i >= 0]

    def count(self) -> int:
        with self._lock:
            return int(self._index.ntotal)

    def persist(self) -> None:
        """Write the FAISS file, then the page map (unless it comes from ``pages``), each atomically;
        the kind is first fitted to the count."""
        with self._lock:
            if self._source is not None:
                wanted = self.policy.choose(self.count(), spec_of(self._index))
                if wanted != self.spec:
                    self.rebuild(wanted)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_vector_index(self._index, self.path)
            if self._pages is None:
                rows = np.array(sorted(self._page_of.items()), dtype=np.int64).reshape(-1, 2)
                atomic_write(pages_path(self.path), lambda tmp: _save_array(tmp, rows))

    def close(self) -> None:
        with self._lock:
            self._index = new_vector_index(FLAT, self.dimension)
            self._set_pages((), ())


def _save_array(path: Path, array: npt.NDArray[Any]) -> None:
    with path.open("wb") as handle:  # a handle: np.save would append ".npy" to a bare name
        np.save(handle, array, allow_pickle=False)


def open_vector_store(
    backend: VectorBackend,
    index_path: Path,
    dimension: int,
    *,
    qdrant_url: str | None = None,
    policy: VectorIndexPolicy | None = None,
    source: VectorSource | None = None,
    collection: str | None = None,
) -> VectorStore:
    """The store of one index directory: ``vectors.faiss`` in it, or a Qdrant collection.

    Qdrant runs embedded under ``<index_path>/qdrant`` unless ``qdrant_url`` names a server. It keeps
    its own files up to date on every write, so ``source`` and ``policy`` only concern FAISS. The
    collection is ``collection``, else named after the directory; on a server shared by several data
    directories, give each index a name of its own (:class:`~indexes.PassageIndex` does).
    """
    if backend == "faiss":
        return FaissVectorStore(index_path / FAISS_FILE, dimension, policy=policy, source=source)
    if backend == "qdrant":
        from citeline.indexes._qdrant import QdrantVectorStore  # optional dependency: imported only when chosen

        name = collection or index_path.name
        if qdrant_url is not None:
            return QdrantVectorStore(name, dimension, url=qdrant_url)
        return QdrantVectorStore(name, dimension, path=index_path / QDRANT_DIR)
    raise ValueError(f"unknown vector backend {backend!r}; use one of {', '.join(VECTOR_BACKENDS)}")
