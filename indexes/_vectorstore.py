"""Where an index's vectors live: the :class:`VectorStore` interface and its FAISS backend.

A vector store holds one vector per passage, keyed by the passage id, and the id of the page the
passage belongs to, so a page's vectors can be removed at once and a search can be restricted to
some pages. Scores are inner products of the normalised vectors the embedders produce, so cosine
similarities, best first. The SQLite passage store stays the source of truth: a store that is
missing or does not match it is rebuilt from it (``source``), never the other way round.

Two backends behave the same under one contract (``tests/indexes/test_vectorstore_contract.py``):

``faiss``   :class:`FaissVectorStore`, in process, the kinds of :mod:`indexes._vectors` chosen by size.
``qdrant``  :class:`~indexes.QdrantVectorStore` (``indexes._qdrant``), embedded local mode or a server.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import faiss
import numpy as np
import numpy.typing as npt

from indexes._embedder import Vectors
from indexes._exceptions import EmbedderMismatchError, IndexCorruptError
from indexes._vectors import (
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

    def search(self, vector: Vectors, k: int, *, page_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(passage id, cosine score)``, best first; only of ``page_ids`` unless None."""
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

    FAISS keeps only ids and vectors, so the page of each passage is kept beside it in memory and
    persisted as ``<file>.pages.npy`` (``(n, 2)`` int64 rows of passage id, page id).

    A page filter is applied inside FAISS, not by post-filtering: the pages' passage ids (from the
    page map) become an ``IDSelectorBatch`` that the scan checks before scoring, so a filtered
    search returns the true top ``k`` among those pages however few they are. On IVF it probes
    every list, since a handful of pages' passages may sit in lists a plain query would skip; the
    selector keeps that cheap (ids are tested, only selected vectors are scored).

    The kind follows the count on :meth:`persist`, rebuilt from ``source``; without a source the
    kind stays what it is (the stored vectors cannot be read back exactly from IVF-SQ8 codes).
    Opening files that disagree (a crash between the two writes) rebuilds from ``source``, and
    raises :class:`~indexes.IndexCorruptError` without one.
    """

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        policy: VectorIndexPolicy | None = None,
        source: VectorSource | None = None,
    ) -> None:
        self.path = path
        self.dimension = dimension
        self.policy = policy or VectorIndexPolicy()
        self._source = source
        self._lock = threading.RLock()
        self._page_of: dict[int, int] = {}
        self._ids_of: dict[int, set[int]] = {}
        self._index: Any = new_vector_index(FLAT, dimension)
        if not self._load():
            if self._source is not None:
                self.rebuild()
            elif self.path.exists() or pages_path(self.path).exists():
                raise IndexCorruptError(
                    f"{self.path} and its page map disagree, and there is no source to rebuild from"
                )

    @property
    def spec(self) -> VectorIndexSpec:
        """The kind of the live FAISS index."""
        return spec_of(self._index) or FLAT

    def _load(self) -> bool:
        """Read the files; False when missing, unreadable or not matching each other."""
        map_path = pages_path(self.path)
        if not (self.path.is_file() and map_path.is_file()):
            return False
        try:
            index = faiss.read_index(str(self.path))
            rows = np.load(map_path, allow_pickle=False)
        except (OSError, RuntimeError, ValueError):
            return False
        if spec_of(index) is None or index.d != self.dimension or rows.ndim != 2 or index.ntotal != len(rows):
            return False
        configure_search(index, self.policy)
        self._index = index
        self._set_pages(rows[:, 0].tolist(), rows[:, 1].tolist())
        return True

    def _set_pages(self, ids: Iterable[int], page_ids: Iterable[int]) -> None:
        self._page_of = {}
        self._ids_of = {}
        for passage_id, page_id in zip(ids, page_ids, strict=True):
            self._page_of[passage_id] = page_id
            self._ids_of.setdefault(page_id, set()).add(passage_id)

    def rebuild(self, spec: VectorIndexSpec | None = None) -> None:
        """Rebuild from ``source`` as ``spec``, or as the kind the policy gives the count.

        Reads the source in three passes (ids, a seeded training sample for IVF, then the vectors),
        so the vectors never sit in memory all at once.
        """
        if self._source is None:
            raise RuntimeError("this FAISS store has no source to rebuild from")
        with self._lock:
            ids: list[int] = []
            pages: list[int] = []
            for batch_ids, _, batch_pages in self._source():
                ids.extend(int(i) for i in batch_ids)
                pages.extend(int(p) for p in batch_pages)
            spec = spec or self.policy.choose(len(ids))
            index = new_vector_index(spec, self.dimension)
            if not index.is_trained:
                rng = np.random.default_rng(self.policy.seed)
                chosen = rng.choice(
                    np.asarray(ids, dtype=np.int64), self.policy.train_size(spec.nlist, len(ids)), False
                )
                sample = [
                    check_batch(batch_ids, vectors, batch_pages, self.dimension)[np.isin(batch_ids, chosen)]
                    for batch_ids, vectors, batch_pages in self._source()
                ]
                train_vector_index(index, np.vstack(sample), seed=self.policy.seed)
            for batch_ids, vectors, batch_pages in self._source():
                rows = check_batch(batch_ids, vectors, batch_pages, self.dimension)
                if len(rows):
                    index.add_with_ids(rows, np.asarray(batch_ids, dtype=np.int64))
            configure_search(index, self.policy)
            self._index = index
            self._set_pages(ids, pages)

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
                self._ids_of.setdefault(int(page_id), set()).add(int(passage_id))

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._page_of]
            if not present:
                return
            self._index.remove_ids(np.asarray(present, dtype=np.int64))
            for passage_id in present:
                page_id = self._page_of.pop(passage_id)
                page = self._ids_of[page_id]
                page.discard(passage_id)
                if not page:
                    del self._ids_of[page_id]

    def remove_page(self, page_id: int) -> None:
        with self._lock:
            self.remove(sorted(self._ids_of.get(page_id, ())))

    def search(self, vector: Vectors, k: int, *, page_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        row = query_row(vector, self.dimension)
        with self._lock:
            params: Any = None
            if page_ids is None:
                limit = min(k, int(self._index.ntotal))
            else:
                allowed = np.fromiter(
                    (i for page_id in set(page_ids) for i in self._ids_of.get(page_id, ())), dtype=np.int64
                )
                limit = min(k, len(allowed))
                params = (
                    faiss.SearchParametersIVF() if isinstance(self._index, faiss.IndexIVF) else faiss.SearchParameters()
                )
                params.sel = faiss.IDSelectorBatch(allowed)
                if isinstance(self._index, faiss.IndexIVF):
                    params.nprobe = int(self._index.nlist)
            if limit <= 0:
                return []
            scores, found = self._index.search(row, limit, params=params)
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i >= 0]

    def count(self) -> int:
        with self._lock:
            return int(self._index.ntotal)

    def persist(self) -> None:
        """Write the FAISS file, then the page map, each atomically; the kind is first fitted to the count."""
        with self._lock:
            if self._source is not None:
                wanted = self.policy.choose(self.count(), spec_of(self._index))
                if wanted != self.spec:
                    self.rebuild(wanted)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_vector_index(self._index, self.path)
            rows = np.array(sorted(self._page_of.items()), dtype=np.int64).reshape(-1, 2)
            _write_array(rows, pages_path(self.path))

    def close(self) -> None:
        with self._lock:
            self._index = new_vector_index(FLAT, self.dimension)
            self._set_pages((), ())


def _write_array(array: npt.NDArray[Any], path: Path) -> None:
    """``np.save`` to a temporary file in the same folder, fsynced, then renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        return FaissVectorStore(index_path / "vectors.faiss", dimension, policy=policy, source=source)
    if backend == "qdrant":
        from indexes._qdrant import QdrantVectorStore  # optional dependency: imported only when chosen

        name = collection or index_path.name
        if qdrant_url is not None:
            return QdrantVectorStore(name, dimension, url=qdrant_url)
        return QdrantVectorStore(name, dimension, path=index_path / "qdrant")
    raise ValueError(f"unknown vector backend {backend!r}; use one of {', '.join(VECTOR_BACKENDS)}")
