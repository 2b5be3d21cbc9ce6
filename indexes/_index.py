"""The on-disk index: a facade over the SQLite passage store and a :class:`~indexes.VectorStore`.

The passage store (:mod:`indexes._passages`, schema in :mod:`indexes._schema`) is the source of
truth; the vectors are derived data in FAISS (``vector_backend="faiss"``, the default, through
:class:`~indexes.FaissVectorStore`) or in a Qdrant collection (``"qdrant"``: embedded under
``qdrant/`` or on the server at ``qdrant_url``, through :class:`~indexes.QdrantVectorStore`). Both
go through the one :class:`~indexes.VectorStore` protocol; file layout in :mod:`indexes._layout`.

Over the ~450-line guide because it is the public face of an index: about half of it is one-line
delegations to the passage store that carry the public docstrings callers read.

The FAISS file is written atomically by :meth:`PassageIndex.flush`; the manifest written after it
records the store generation it matches. A reader that finds it older than the store (a crash
between the two writes, or a writer still running) rebuilds the vectors from SQLite instead of
serving stale or partial results. An open reader then follows later commits with
:meth:`PassageIndex.refresh`, which reads only what changed: the passages added since, and the ids
the ``removed_passages`` log records as removed since.

Qdrant is written on every change, after the SQLite commit; the manifest written by
:meth:`PassageIndex.flush` records the backend and the store generation the collection matched
then. A writer that finds the collection behind the store (or the count off) drops and rebuilds it
from SQLite; a reader, which must not write, serves an exact in-memory FAISS store rebuilt from
SQLite instead, like a reader of a stale FAISS file. An index that used Qdrant before collection
names were unique (see :mod:`indexes._schema`) keeps its collection until a writer has to rebuild
it on a server: then it moves to a name of its own and leaves the old collection alone, since
another data directory's index may be using it.

The backend an index was built with is recorded in the manifest; opening it with the other backend
rebuilds the vectors from SQLite into the requested one (SQLite holds every vector, so nothing is
lost), and the next :meth:`PassageIndex.flush` records the switch. The old backend's files are left
in place, unused.

Embedded Qdrant allows one process (one client) per folder at a time: while an ingest job writes an
embedded-Qdrant index, no other process can open it, and doing so raises
:class:`~indexes.VectorStoreBusyError` at once. Several processes (the service reading while ingest
writes) need a Qdrant server (``qdrant_url``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from citeline.indexes._embedder import Vectors
from citeline.indexes._exceptions import EmbedderMismatchError, IndexCorruptError, IndexNotFoundError
from citeline.indexes._layout import DB_FILE, FAISS_FILE, MANIFEST_FILE, QDRANT_DIR, index_dir
from citeline.indexes._manifest import Manifest, now, read_manifest, write_manifest
from citeline.indexes._passages import PassageStore
from citeline.indexes._schema import COLLECTION_KEY, connect, ensure_schema, new_collection_name
from citeline.indexes._simhash import simhash_to_sql
from citeline.indexes._types import ALIAS_KINDS, AliasKind, PageRecord, PassageRecord, SearchHit
from citeline.indexes._vectors import FLAT, VectorIndexPolicy
from citeline.indexes._vectorstore import VECTOR_BACKENDS, FaissVectorStore, VectorBackend, VectorStore


@dataclass(frozen=True, slots=True)
class UpsertResult:
    page_id: int
    passages: int


class PassageIndex:
    """One named index. Open it with :meth:`create_or_open` (writer) or :meth:`open` (reader).

    Methods are thread-safe; one process should write at a time. ``vector_backend`` picks where the
    vectors are searched (see the module docstring); with embedded Qdrant only one process may have
    the index open at a time.
    """

    vector_policy: ClassVar[VectorIndexPolicy] = VectorIndexPolicy()
    """Which vector index kind a passage count gets; applied when the vectors are (re)built."""

    def __init__(
        self,
        path: Path,
        store: PassageStore,
        *,
        vector_backend: VectorBackend = "faiss",
        qdrant_url: str | None = None,
    ) -> None:
        if vector_backend not in VECTOR_BACKENDS:
            raise ValueError(f"unknown vector backend {vector_backend!r}; use one of {', '.join(VECTOR_BACKENDS)}")
        self.path = path
        self.name = path.name
        self._store = store
        self._read_only = store.read_only
        self._lock = store.lock  # one lock: a commit and its vector update are seen together
        meta = store.meta()
        try:
            self.embedding_model = meta["embedding_model"]
            self.dimension = int(meta["dimension"])
        except KeyError as exc:
            raise IndexCorruptError(f"{path / DB_FILE} has no embedder metadata") from exc
        self.vector_backend: VectorBackend = vector_backend
        """The backend asked for; a reader of a stale Qdrant collection searches an in-memory FAISS instead."""
        self._qdrant_url = qdrant_url
        # A store no writer has opened since collection names became unique uses the index name.
        self._collection = meta.get(COLLECTION_KEY) or self.name
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._closed = False
        self._identity = store.identity()
        # One read snapshot: the vectors loaded and the sync point a refresh starts from agree.
        with store.snapshot():
            self._synced = store.sync_point()
            self._vectors: VectorStore = self._open_qdrant() if vector_backend == "qdrant" else self._open_faiss()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def create_or_open(
        cls,
        data_dir: Path,
        name: str,
        *,
        embedding_model: str,
        dimension: int,
        vector_backend: VectorBackend = "faiss",
        qdrant_url: str | None = None,
    ) -> PassageIndex:
        path = index_dir(data_dir, name)
        path.mkdir(parents=True, exist_ok=True)
        index = cls._open(
            path, False, vector_backend, qdrant_url, {"embedding_model": embedding_model, "dimension": str(dimension)}
        )
        try:
            index.check_embedder(embedding_model, dimension)
            if not (path / MANIFEST_FILE).exists():
                index.flush()
        except BaseException:
            index.close()  # also the embedded Qdrant folder's lock, which no other open could take
            raise
        return index

    @classmethod
    def temporary(cls, name: str, *, embedding_model: str, dimension: int) -> PassageIndex:
        """A writable FAISS index in a fresh temporary folder that :meth:`close` deletes: pages fetched
        for one question are searched like any index and never touch the data directory."""
        holder = tempfile.TemporaryDirectory(prefix="citeline-")
        try:
            index = cls.create_or_open(Path(holder.name), name, embedding_model=embedding_model, dimension=dimension)
        except BaseException:
            holder.cleanup()
            raise
        index._temporary = holder
        return index

    @classmethod
    def open(
        cls,
        data_dir: Path,
        name: str,
        *,
        read_only: bool = True,
        vector_backend: VectorBackend = "faiss",
        qdrant_url: str | None = None,
        embedder: tuple[str, int] | None = None,
    ) -> PassageIndex:
        """The index ``name``; with ``embedder`` (model name, dimension), checked to be one that
        model built (:class:`EmbedderMismatchError` otherwise, and nothing is left open)."""
        path = index_dir(data_dir, name)
        if not (path / DB_FILE).is_file():
            raise IndexNotFoundError(name)
        index = cls._open(path, read_only, vector_backend, qdrant_url)
        if embedder is not None:
            try:
                index.check_embedder(*embedder)
            except BaseException:
                index.close()
                raise
        return index

    @classmethod
    def _open(
        cls,
        path: Path,
        read_only: bool,
        vector_backend: VectorBackend,
        qdrant_url: str | None,
        meta: dict[str, str] | None = None,
    ) -> PassageIndex:
        """Connect, migrate when writable (every writable open goes through here), then open the vectors."""
        conn = connect(path / DB_FILE, read_only=read_only)
        try:
            if not read_only:
                ensure_schema(conn, path, meta)
            store = PassageStore(path, conn, read_only=read_only, name=path.name)
            return cls(path, store, vector_backend=vector_backend, qdrant_url=qdrant_url)
        except BaseException:
            conn.close()
            raise

    def check_embedder(self, embedding_model: str, dimension: int) -> None:
        if (embedding_model, dimension) != (self.embedding_model, self.dimension):
            raise EmbedderMismatchError(
                f"index {self.name!r} was built with {self.embedding_model!r} ({self.dimension}-d);"
                f" it cannot be used with {embedding_model!r} ({dimension}-d)"
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._store.close()
            self._vectors.close()  # embedded Qdrant holds a lock on its folder until closed
            if self._temporary is not None:
                self._temporary.cleanup()
                self._temporary = None

    # -- vectors -----------------------------------------------------------------------------

    def _open_faiss(self, *, load: bool = True) -> FaissVectorStore:
        """The FAISS store: the saved file when the manifest says it matches the store, else rebuilt."""
        recorded = read_manifest(self.path)
        current = (
            load
            and recorded.get("generation") == self._store.generation()
            and recorded.get("vector_backend", "faiss") == "faiss"
        )
        return FaissVectorStore(
            self.path / FAISS_FILE,
            self.dimension,
            policy=self.vector_policy,
            source=self._store.vector_batches,
            pages=self._store.page_map,
            load=current,
        )

    def _new_qdrant(self) -> VectorStore:
        from citeline.indexes._qdrant import open_index_collection  # optional dependency: imported only when chosen

        return open_index_collection(self.path, self.dimension, collection=self._collection, url=self._qdrant_url)

    def _open_qdrant(self) -> VectorStore:
        """Open the collection; rebuild it when it is behind the store (writer) or serve FAISS (reader)."""
        store = self._new_qdrant()
        try:
            recorded = read_manifest(self.path)
            current = (
                recorded.get("vector_backend") == "qdrant"
                and recorded.get("generation") == self._store.generation()
                and store.count() == self._store.passage_count()
            )
        except BaseException:
            store.close()  # an embedded folder stays locked until its client is closed
            raise
        if current:
            return store
        if self._read_only:
            # A reader must not write the collection: it serves exact results from SQLite's vectors.
            store.close()
            return self._open_faiss(load=False)
        return self._rebuild_qdrant(store)

    def _rebuild_qdrant(self, store: VectorStore) -> VectorStore:
        """Drop the collection (only ever this index's own) and load every stored vector into a new one."""
        store.close()
        if self._qdrant_url is None:
            shutil.rmtree(self.path / QDRANT_DIR, ignore_errors=True)  # the folder is this index's alone
        elif self._collection == self.name:
            # Named before names were unique: another data directory's index of this name may be
            # using it, so it stays, and this index moves to a collection of its own.
            self._collection = new_collection_name(self.name)
            self._store.record_collection(self._collection)
        else:
            from citeline.indexes._qdrant import drop_collection

            drop_collection(self._qdrant_url, self._collection)
        store = self._new_qdrant()
        try:
            for ids, vectors, page_ids in self._store.vector_batches():
                store.add(ids, vectors, page_ids)
        except BaseException:
            store.close()
            raise
        return store

    def generation(self) -> int:
        """The store generation: incremented by every committed change."""
        return self._store.generation()

    def refresh(self) -> bool:
        """Catch a reader up with the commits made since it was opened or last refreshed.

        Only what changed is read: the vectors of passages added since are added to the in-memory
        index and those of passages removed since (the ``removed_passages`` log) are dropped, so a
        reader following an ingest pays milliseconds per commit instead of a rebuild from the whole
        store. False when it cannot catch up in place: its store was replaced (removed and built
        again), or it fell further behind than the log reaches; reopen it then. A writer's memory
        follows its own writes, so it is always current.
        """
        if not self._read_only:
            return True
        if self._store.replaced():
            return False
        with self._store.snapshot():
            point = self._store.sync_point()
            synced = self._synced
            if point.generation == synced.generation:
                return True
            if (
                point.generation < synced.generation
                or self._store.identity() != self._identity  # another embedder, another Qdrant collection...
                or not self._store.log_reaches(synced, point)  # entries this reader needs were pruned
            ):
                return False
            if isinstance(self._vectors, FaissVectorStore):
                removed, added = self._store.changes_since(synced)
                self._vectors.remove(removed)
                for batch in added:
                    self._vectors.add(*batch)
            # else: a current Qdrant collection, which the writer updates on every change itself
            self._store.read_columns()
            self._synced = point
        return True

    # -- writing -----------------------------------------------------------------------------

    def upsert_page(self, page: PageRecord, passages: Sequence[PassageRecord], vectors: Vectors) -> UpsertResult:
        """Store a page and its passages, replacing what was stored for the same URL."""
        if len(passages) != len(vectors):
            raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors")
        if len(vectors) and vectors.shape[1] != self.dimension:
            raise EmbedderMismatchError(f"vectors have {vectors.shape[1]} dimensions, index has {self.dimension}")
        for passage in passages:
            if page.text[passage.start : passage.end] != passage.text:
                raise ValueError(f"passage [{passage.start}:{passage.end}] does not match the page text of {page.url}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # The lock spans the commit and the vector update, so no search sees one without the other.
        with self._lock:
            page_id, old_ids, new_ids = self._store.upsert_page(page, passages, vectors)
            # Memory follows only once SQLite accepted the change.
            self._vectors.remove(old_ids)
            if new_ids:
                self._vectors.add(new_ids, vectors, [page_id] * len(new_ids))
        return UpsertResult(page_id=page_id, passages=len(new_ids))

    def remove_page(self, url: str) -> bool:
        """Remove one page, its passages, vectors and aliases; False when it was not stored."""
        with self._lock:
            ids = self._store.remove_page(url)
            if ids is None:
                return False
            self._vectors.remove(ids)
        return True

    def remove_pages(self, pattern: str) -> list[str]:
        """Remove the pages whose URL is ``pattern`` or matches it as a glob; return their URLs, sorted.

        A pattern that is exactly a stored page or alias URL removes only that URL, since URLs
        often contain ``?`` and ``[``; any other pattern is a case-sensitive :func:`fnmatch` glob
        (``https://docs.example/old/*``). Matching pages go in one transaction with their
        passages, vectors and aliases; aliases whose own URL matches go too.
        """
        with self._lock:
            removed, ids = self._store.remove_pages(pattern)
            self._vectors.remove(ids)
        return removed

    def mark_fetched(
        self,
        url: str,
        *,
        status: int,
        fetched_at: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> bool:
        """Record a fetch that left the content as stored (a 304 revalidation); False when not stored.

        Sets the status and fetch time and keeps the text, passages and vectors. A successful
        status (below 400) also clears ``gone``: the source answers again. A 304 may carry newer
        validators; pass them to replace the stored ones (None keeps what is stored).
        """
        return self._store.mark_fetched(
            url, status=status, fetched_at=fetched_at, etag=etag, last_modified=last_modified
        )

    def mark_gone(self, url: str, gone: bool = True) -> bool:
        """Mark a kept page as gone from its source (404/410), or no longer; False when not stored."""
        return self._store.mark_gone(url, gone)

    def add_alias(self, url: str, page_url: str, kind: AliasKind) -> None:
        """Record ``url`` as an alias of the stored page ``page_url``, replacing an earlier alias of ``url``.

        Raises ValueError for an alias of itself, an unknown kind, a ``url`` that is a stored page
        (remove the page first) and a ``page_url`` that is itself an alias (point at its page).
        The page is normally stored first; an alias of a missing page is reported by
        :meth:`check_integrity`.
        """
        if kind not in ALIAS_KINDS:
            raise ValueError(f"alias kind must be one of {', '.join(ALIAS_KINDS)}, not {kind!r}")
        if url == page_url:
            raise ValueError(f"{url} cannot be an alias of itself")
        self._store.add_alias(url, page_url, kind)

    def flush(self) -> Manifest:
        """Persist the vectors (FAISS file, or Qdrant) and the manifest so the next open needs no rebuild.

        When the passage count has crossed a threshold of :attr:`vector_policy`, the FAISS index is
        first rebuilt as the kind the count calls for (about 3 s at 100k passages, 30 s at 1M on two
        cores); searches wait for it.
        """
        with self._lock:
            if self._read_only:
                raise PermissionError(f"index {self.name!r} was opened read-only")
            self._vectors.persist()
            manifest = self.manifest()
            write_manifest(self.path, manifest)
            self._store.prune_removed_log()
            return manifest

    # -- reading -----------------------------------------------------------------------------

    def alias_of(self, url: str) -> tuple[str, str] | None:
        """``(page_url, kind)`` when ``url`` is an alias, else None."""
        return self._store.alias_of(url)

    def aliases(self, page_url: str) -> list[tuple[str, str]]:
        """``(url, kind)`` of every alias of ``page_url``, sorted by URL."""
        return self._store.aliases(page_url)

    def page_version(self, url: str) -> tuple[str, str] | None:
        """``(content_hash, chunking)`` of the stored page: equal values mean nothing to redo."""
        return self._store.page_version(url)

    def validators(self, url: str) -> tuple[str | None, str | None] | None:
        """``(etag, last_modified)`` of the stored page, for a conditional GET; None when not stored."""
        return self._store.validators(url)

    def page_with_hash(self, content_hash: str, *, exclude_url: str | None = None) -> str | None:
        """The URL of the oldest live (not gone) page with this content hash, other than ``exclude_url``."""
        if not content_hash:
            return None  # pages stored without a hash are not all duplicates of each other
        return self._store.page_with_hash(content_hash, exclude_url=exclude_url)

    def near_duplicate(self, simhash: int, *, max_distance: int = 3, exclude_url: str | None = None) -> str | None:
        """The URL of the live page whose SimHash is closest to ``simhash``, within ``max_distance`` bits.

        Ties go to the oldest page. A linear scan of a covering index: about 6 ms for 10k pages,
        and it reads the store, so it is right however many processes write.
        """
        target = simhash_to_sql(simhash)  # raises for a value that is no 64-bit SimHash
        if not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be between 0 and 64, not {max_distance}")
        return self._store.near_duplicate(target, max_distance=max_distance, exclude_url=exclude_url)

    def page_count(self) -> int:
        return self._store.page_count()

    def manifest(self) -> Manifest:
        with self._lock:
            pages = self._store.page_count()
            passages = self._store.passage_count()
            generation = self._store.generation()
            faiss = self._vectors if isinstance(self._vectors, FaissVectorStore) else None
        return Manifest(
            name=self.name,
            embedding_model=self.embedding_model,
            dimension=self.dimension,
            pages=pages,
            passages=passages,
            generation=generation,
            faiss_index=(faiss.spec if faiss is not None else FLAT).factory,
            updated_at=now(),
            vector_backend="faiss" if faiss is not None else "qdrant",
        )

    @property
    def vector_count(self) -> int:
        with self._lock:
            return self._vectors.count()

    def search(self, query: Vectors, k: int = 5) -> list[SearchHit]:
        """Return the ``k`` passages closest to one query vector, best first."""
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.dimension:
            raise EmbedderMismatchError(f"query has {vector.shape[1]} dimensions, index has {self.dimension}")
        if k <= 0:
            return []
        with self._lock:
            return self._store.hits(self._vectors.search(vector[0], k))

    def passages_by_id(self, passage_ids: Sequence[int]) -> list[SearchHit]:
        return self._store.hits([(i, 0.0) for i in passage_ids])

    def page(self, url: str) -> PageRecord | None:
        return self._store.page(url)

    def unmentioned(self, terms: Sequence[str]) -> list[str]:
        """The terms that occur in no passage of the index (case-insensitive substring match).

        A full scan per term (~50 ms on 14k passages), so callers pass a handful of rare terms.
        """
        return self._store.unmentioned(terms)

    def page_urls(self) -> list[str]:
        return self._store.page_urls()

    def check_integrity(self) -> list[str]:
        """Return a list of problems (empty when vectors, passages and pages agree)."""
        problems = []
        with self._lock:
            count = self._store.passage_count()
            vectors = self._vectors.count()
            if count != vectors:
                problems.append(f"{vectors} vectors but {count} passages")
            if isinstance(self._vectors, FaissVectorStore) and not self._vectors.is_trained:
                problems.append("the vector index is not trained")
            problems.extend(self._store.problems())
        return problems
