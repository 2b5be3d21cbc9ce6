"""The on-disk index: a SQLite passage store, a FAISS vector index and a manifest.

Layout of ``<data_dir>/indexes/<name>/``::

    passages.sqlite   source of truth: pages, passages and their vectors (WAL mode)
    vectors.faiss     FAISS inner-product index, ids = passage ids (derived; kind by size, see _vectors)
    manifest.json     embedding model, dimension, vector backend, counts and the store generation
    qdrant/           embedded Qdrant collection (derived), only for the ``qdrant`` backend without a server

SQLite transactions make every page change atomic: a page's old passages are replaced by its new
ones in one transaction, so a crash leaves each page either fully present or absent. The FAISS
file is derived data, written to a temporary file and moved into place with ``os.replace``; the
manifest written after it records the store generation it matches. A reader that finds the FAISS
file older than the store (a crash between the two writes, or a writer still running) rebuilds
the vectors from SQLite instead of serving stale or partial results. An open reader then follows
later commits with :meth:`PassageIndex.refresh`, which reads only what changed: the passages added
since, and the ids the ``removed_passages`` log (filled by a trigger) records as removed since.

The vectors live in FAISS (``vector_backend="faiss"``, the default) or in a Qdrant collection
(``"qdrant"``: embedded under ``qdrant/`` or on the server at ``qdrant_url``), see
:mod:`indexes._vectorstore`. The collection's name is the index name plus a random id, minted once
by the first writer and kept in the store's ``meta`` table, so indexes of the same name in two data
directories (or a copy of one) never share a collection on one server, and a writer only ever drops
its own. An index that already used Qdrant before names were unique keeps its collection (named
after the index alone) until a writer has to rebuild it on a server: then it moves to a name of its
own and leaves the old collection alone, since another data directory's index may be using it.
Qdrant is written on every change, after the SQLite commit; the
manifest written by :meth:`PassageIndex.flush` records the backend and the store generation the
collection matched then. A writer that finds the collection behind the store (or the count off)
drops and rebuilds it from SQLite; a reader, which must not write, serves an exact in-memory FAISS
index rebuilt from SQLite instead, like a reader of a stale FAISS file.

The backend an index was built with is recorded in the manifest; opening it with the other backend
rebuilds the vectors from SQLite into the requested one (SQLite holds every vector, so nothing is
lost), and the next :meth:`PassageIndex.flush` records the switch. The old backend's files are left
in place, unused.

Embedded Qdrant allows one process (one client) per folder at a time: while an ingest job writes an
embedded-Qdrant index, no other process can open it, and doing so raises
:class:`VectorStoreBusyError` at once. Several processes (the service reading while ingest writes)
need a Qdrant server (``qdrant_url``).

Schema changes are additive and migrated in place by every writer (:meth:`PassageIndex.create_or_open`
and ``PassageIndex.open(read_only=False)`` both run :func:`_ensure_schema`): new tables are created if
missing and new ``pages`` columns added with ``ALTER TABLE``. ``tests/data/indexes/`` keeps indexes
written by each earlier schema version; every command is tested against them. A reader
never writes, so it reads a store that no writer has migrated yet with the missing columns taken
as their defaults (NULL, ``''`` for ``chunking``, not gone).

Besides pages, the store keeps aliases: URLs that are not indexed themselves because their
content duplicates a stored page (exactly or nearly) or because they redirect to one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from indexes._embedder import Vectors
from indexes._exceptions import (
    CitelineIndexError,
    EmbedderMismatchError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from indexes._types import ALIAS_KINDS, AliasKind, PageRecord, PassageRecord, SearchHit
from indexes._vectors import (
    FLAT,
    FLAT_FACTORY,
    VectorIndexPolicy,
    VectorIndexSpec,
    configure_search,
    new_vector_index,
    spec_of,
    train_vector_index,
    write_vector_index,
)
from indexes._vectorstore import VECTOR_BACKENDS, VectorBackend, VectorBatch, VectorStore, open_vector_store

FORMAT_VERSION = 1
"""The file layout. Later schema additions are migrated in place and do not change it."""
INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DB_FILE = "passages.sqlite"
FAISS_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"
QDRANT_DIR = "qdrant"
COLLECTION_KEY = "qdrant_collection"
"""``meta`` key of the index's Qdrant collection name."""
COLLECTION_HOME_KEY = "qdrant_collection_home"
"""``meta`` key of the folder the collection name was minted for: a copied index gets its own."""


class VectorStoreBusyError(CitelineIndexError, RuntimeError):
    """The index's embedded Qdrant folder is held by another client (another process): use a Qdrant server."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    fetched_url TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    author TEXT, date TEXT, sitename TEXT, language TEXT,
    content_hash TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    chunking TEXT NOT NULL DEFAULT '',
    status INTEGER, etag TEXT, last_modified TEXT, license TEXT,
    simhash INTEGER,
    gone INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY,
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_page ON passages(page_id);
CREATE TABLE IF NOT EXISTS aliases (
    url TEXT PRIMARY KEY,
    page_url TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('exact', 'near', 'redirect')),
    created_at TEXT
);
CREATE INDEX IF NOT EXISTS aliases_page ON aliases(page_url);
CREATE TABLE IF NOT EXISTS removed_passages (seq INTEGER PRIMARY KEY AUTOINCREMENT, passage_id INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS passages_removed AFTER DELETE ON passages
BEGIN INSERT INTO removed_passages (passage_id) VALUES (old.id); END;
"""
"""``removed_passages`` logs every deleted passage id (page cascades included), in order, so a
reader catches up by reading only what changed since (:meth:`PassageIndex.refresh`): ids are
reused after a delete, so new rows alone cannot tell it which of its vectors went stale."""

_REMOVED_LOG_KEEP = 500_000
"""Removals a writer's flush keeps in the log; a reader further behind reopens (and rebuilds)."""

_ADDED_PAGE_COLUMNS: dict[str, str] = {
    "chunking": "TEXT NOT NULL DEFAULT ''",
    "status": "INTEGER",
    "etag": "TEXT",
    "last_modified": "TEXT",
    "license": "TEXT",
    "simhash": "INTEGER",
    "gone": "INTEGER NOT NULL DEFAULT 0",
}
"""``pages`` columns added after the first release, in order: the migration adds the missing ones."""

_MIGRATED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS pages_content_hash ON pages(content_hash)",
    # Covers the near-duplicate scan, so it never reads the page rows (and their long texts).
    "CREATE INDEX IF NOT EXISTS pages_simhash ON pages(simhash, gone, url) WHERE simhash IS NOT NULL",
)
"""Indexes over columns a migration may have just added, so created after it."""

_UNMIGRATED_VALUE = {"chunking": "''", "gone": "0"}
"""What a reader selects for an added column the store lacks: the column's default (else NULL)."""

_PAGE_FIELDS = (
    "url",
    "title",
    "text",
    "fetched_url",
    "author",
    "date",
    "sitename",
    "language",
    "content_hash",
    "fetched_at",
    "chunking",
    "status",
    "etag",
    "last_modified",
    "license",
    "simhash",
    "gone",
)
"""The ``pages`` columns that make a :class:`PageRecord` (same names as its fields)."""

_METADATA_FIELDS = (
    "author",
    "date",
    "sitename",
    "language",
    "fetched_at",
    "license",
    "status",
    "etag",
    "last_modified",
    "content_hash",
    "gone",
)
"""The page provenance a :class:`SearchHit` carries in ``metadata``, for citations to show."""

_HITS_QUERY = (
    'SELECT p.id, p.text, p.start, p."end", p.heading, g.url, g.title, g.id, {metadata}'
    " FROM passages p JOIN pages g ON g.id = p.page_id WHERE p.id IN ({marks})"
)

_UINT64 = (1 << 64) - 1


def _simhash_to_sql(simhash: int) -> int:
    """An unsigned 64-bit SimHash as the signed 64-bit integer SQLite can store."""
    if not 0 <= simhash <= _UINT64:
        raise ValueError(f"simhash {simhash} is not an unsigned 64-bit integer")
    return simhash - (1 << 64) if simhash >> 63 else simhash


def _simhash_from_sql(value: int) -> int:
    return value & _UINT64


def _hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit values, signed or not (the mask makes them agree)."""
    return ((a ^ b) & _UINT64).bit_count()


def _page_columns(conn: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in conn.execute("PRAGMA table_info(pages)")}


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return row is not None


def _migrate(conn: sqlite3.Connection) -> list[str]:
    """Bring a store written by an older version to the current schema; return the added columns.

    Runs inside the caller's write transaction, so two writers opening an old store at once
    cannot both add a column, and a failure leaves the store as it was.
    """
    present = _page_columns(conn)
    added = [name for name in _ADDED_PAGE_COLUMNS if name not in present]
    for name in added:
        # Names and declarations come from the constant above, never from input.
        conn.execute(f"ALTER TABLE pages ADD COLUMN {name} {_ADDED_PAGE_COLUMNS[name]}")
    for statement in _MIGRATED_INDEXES:
        conn.execute(statement)
    return added


def _new_collection_name(index_name: str) -> str:
    """A Qdrant collection name no other index has: the index name (for people) and a random id."""
    return f"{index_name}-{uuid.uuid4().hex}"


def _recorded_backend(path: Path) -> object:
    try:
        return json.loads((path / MANIFEST_FILE).read_text()).get("vector_backend")
    except (OSError, ValueError, AttributeError):
        return None


def _claim_collection(conn: sqlite3.Connection, path: Path) -> bool:
    """Record the index's Qdrant collection name unless this folder has one; True when it changed.

    A store without one that already kept its vectors in Qdrant keeps the collection it has, which
    is named after the index; any other gets a fresh name. A store copied or moved to another
    folder gets a fresh name too, so the copy and the original never write one collection.
    """
    home = str(path.resolve())
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (COLLECTION_KEY, COLLECTION_HOME_KEY)))
    if meta.get(COLLECTION_KEY) and meta.get(COLLECTION_HOME_KEY) == home:
        return False
    legacy = COLLECTION_KEY not in meta and _recorded_backend(path) == "qdrant"
    name = path.name if legacy else _new_collection_name(path.name)
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [(COLLECTION_KEY, name), (COLLECTION_HOME_KEY, home)],
    )
    return COLLECTION_KEY in meta


def _ensure_schema(conn: sqlite3.Connection, path: Path, meta: Mapping[str, str] | None = None) -> None:
    """Bring a store opened for writing to the current schema, and fill in missing ``meta`` rows.

    Every writable open runs it, so no writer ever meets a store older than its code (an index
    written before the ``aliases`` table, say). ``meta`` (the embedder of a new index) is only
    recorded where the store has none.
    """
    conn.executescript(_SCHEMA)  # only IF NOT EXISTS statements: safe to repeat and to race
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn)
        defaults = {**(meta or {}), "generation": "0", "format_version": str(FORMAT_VERSION)}
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", list(defaults.items()))
        if _claim_collection(conn, path):
            # Readers of the old folder's name must reopen: moving the generation makes them.
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")


def _metadata_value(name: str, value: object) -> str | None:
    """A provenance value as the string a citation shows (``gone`` as ``"true"``/``"false"``)."""
    if name == "gone":
        return "true" if value else "false"
    return None if value is None else str(value)


def validate_index_name(name: str) -> str:
    if not INDEX_NAME.match(name):
        raise InvalidIndexNameError(
            f"invalid index name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def index_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "indexes" / validate_index_name(name)


def list_indexes(data_dir: Path) -> list[str]:
    root = data_dir / "indexes"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / DB_FILE).is_file())


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an index is: the embedder that built it and what it holds."""

    name: str
    embedding_model: str
    dimension: int
    pages: int
    passages: int
    generation: int
    """Incremented on every committed change to the store."""
    metric: str = "inner_product"
    faiss_index: str = FLAT_FACTORY
    """The vector index kind as a FAISS factory string (:class:`~indexes.VectorIndexSpec`)."""
    format_version: int = FORMAT_VERSION
    updated_at: str = ""
    vector_backend: VectorBackend = "faiss"
    """Where the vectors matching ``generation`` live (``faiss`` or ``qdrant``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "embedding_model": self.embedding_model,
            "dimension": self.dimension,
            "metric": self.metric,
            "faiss_index": self.faiss_index,
            "vector_backend": self.vector_backend,
            "pages": self.pages,
            "passages": self.passages,
            "generation": self.generation,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class _SyncPoint:
    """Where a reader's vectors stand: the store as of one generation."""

    generation: int
    max_passage_id: int
    """The highest passage id then: a higher one was added since."""
    removed_seq: int
    """The last ``removed_passages`` entry then: later ones were removed (or replaced) since."""


@dataclass(frozen=True, slots=True)
class UpsertResult:
    page_id: int
    passages: int


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same folder, fsynced, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
        conn: sqlite3.Connection,
        *,
        read_only: bool,
        vector_backend: VectorBackend = "faiss",
        qdrant_url: str | None = None,
    ) -> None:
        if vector_backend not in VECTOR_BACKENDS:
            raise ValueError(f"unknown vector backend {vector_backend!r}; use one of {', '.join(VECTOR_BACKENDS)}")
        self.path = path
        self.name = path.name
        self._conn = conn
        self._read_only = read_only
        self._lock = threading.RLock()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        try:
            self.embedding_model = meta["embedding_model"]
            self.dimension = int(meta["dimension"])
        except KeyError as exc:
            raise IndexCorruptError(f"{path / DB_FILE} has no embedder metadata") from exc
        # A writer migrated the store before this point; a reader of an unmigrated store reads
        # the defaults until a refresh finds the columns a writer added since.
        self._read_columns()
        self.vector_backend: VectorBackend = vector_backend
        """The backend asked for; a reader of a stale Qdrant collection searches an in-memory FAISS instead."""
        self._qdrant_url = qdrant_url
        # A store no writer has opened since collection names became unique uses the index name.
        self._collection = meta.get(COLLECTION_KEY) or self.name
        self._qdrant: VectorStore | None = None
        self._faiss: Any = None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._lookup: sqlite3.Connection | None = None
        """A writer's second, read-only connection for the crawler's per-page lookups (see :meth:`validators`)."""
        self._lookup_lock = threading.Lock()
        self._inode = (path / DB_FILE).stat().st_ino
        self._identity = self._meta_identity()
        # One read snapshot: the vectors loaded and the sync point a refresh starts from agree.
        with self._snapshot():
            self._synced = self._sync_point()
            if vector_backend == "qdrant":
                self._open_qdrant()
            else:
                self._faiss = self._load_or_rebuild_faiss()

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
        conn = cls._connect(path / DB_FILE, read_only=False)
        try:
            _ensure_schema(conn, path, {"embedding_model": embedding_model, "dimension": str(dimension)})
            index = cls(path, conn, read_only=False, vector_backend=vector_backend, qdrant_url=qdrant_url)
        except BaseException:
            conn.close()
            raise
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
    ) -> PassageIndex:
        path = index_dir(data_dir, name)
        if not (path / DB_FILE).is_file():
            raise IndexNotFoundError(name)
        conn = cls._connect(path / DB_FILE, read_only=read_only)
        try:
            if not read_only:
                _ensure_schema(conn, path)
            return cls(path, conn, read_only=read_only, vector_backend=vector_backend, qdrant_url=qdrant_url)
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
        if read_only:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(db_path, check_same_thread=False)
        try:
            # The first statement is where a file that is no database fails.
            if not read_only:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except BaseException:
            conn.close()
            raise
        return conn

    def check_embedder(self, embedding_model: str, dimension: int) -> None:
        if (embedding_model, dimension) != (self.embedding_model, self.dimension):
            raise EmbedderMismatchError(
                f"index {self.name!r} was built with {self.embedding_model!r} ({self.dimension}-d);"
                f" it cannot be used with {embedding_model!r} ({dimension}-d)"
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            with self._lookup_lock:
                if self._lookup is not None:
                    self._lookup.close()
                    self._lookup = None
            if self._qdrant is not None:
                self._qdrant.close()  # embedded Qdrant holds a lock on its folder until closed
                self._qdrant = None
            if self._temporary is not None:
                self._temporary.cleanup()
                self._temporary = None

    # -- FAISS -------------------------------------------------------------------------------

    def generation(self) -> int:
        """The store generation: incremented by every committed change."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _read_columns(self) -> None:
        present = _page_columns(self._conn)
        self._column = {
            name: f"g.{name}" if name in present else _UNMIGRATED_VALUE.get(name, "NULL") for name in _PAGE_FIELDS
        }
        self._has_aliases = _has_table(self._conn, "aliases")
        self._hits_query = _HITS_QUERY.replace("{metadata}", ", ".join(self._column[f] for f in _METADATA_FIELDS))

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Hold one read transaction, so a reader's queries all see the same commit (a writer's see its own)."""
        with self._lock:
            if not self._read_only or self._conn.in_transaction:
                yield
                return
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.rollback()  # nothing was written: this only ends the snapshot

    def _sync_point(self) -> _SyncPoint:
        removed = None
        if _has_table(self._conn, "sqlite_sequence"):
            removed = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='removed_passages'").fetchone()
        return _SyncPoint(
            generation=self.generation(),
            max_passage_id=int(self._conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]),
            removed_seq=int(removed[0]) if removed else 0,
        )

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
        if self._replaced():
            return False
        with self._snapshot():
            point = self._sync_point()
            synced = self._synced
            if point.generation == synced.generation:
                return True
            if (
                point.generation < synced.generation
                or self._meta_identity() != self._identity  # another embedder, another Qdrant collection...
                or not _has_table(self._conn, "removed_passages")
            ):
                return False
            logged = self._conn.execute(
                "SELECT COUNT(*) FROM removed_passages WHERE seq > ?", (synced.removed_seq,)
            ).fetchone()[0]
            if logged != point.removed_seq - synced.removed_seq:
                return False  # entries this reader needs were pruned
            if self._faiss is not None:
                self._apply_changes(synced)
            # else: a current Qdrant collection, which the writer updates on every change itself
            self._read_columns()
            self._synced = point
        return True

    def _meta_identity(self) -> dict[str, str]:
        """The store's ``meta`` rows but the generation: what the index is, which only a reopen follows."""
        return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta WHERE key != 'generation'")}

    def _replaced(self) -> bool:
        """Whether the store file is gone or another one now (the index was removed, maybe built again)."""
        try:
            return (self.path / DB_FILE).stat().st_ino != self._inode
        except FileNotFoundError:
            return True

    def _apply_changes(self, since: _SyncPoint) -> None:
        """Drop the vectors of passages removed after ``since`` and add those of passages added after it."""
        removed = np.fromiter(
            (
                r[0]
                for r in self._conn.execute(
                    "SELECT DISTINCT passage_id FROM removed_passages WHERE seq > ?", (since.removed_seq,)
                )
            ),
            dtype=np.int64,
        )
        if len(removed):
            self._faiss.remove_ids(removed)
        # A removed id can come back (SQLite reuses the highest ids after a delete): it is re-added.
        cursor = self._conn.execute(
            "SELECT id, vector FROM passages WHERE id > ?"
            " OR id IN (SELECT passage_id FROM removed_passages WHERE seq > ?) ORDER BY id",
            (since.max_passage_id, since.removed_seq),
        )
        while rows := cursor.fetchmany(4096):
            vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            if vectors.shape[1] != self.dimension:
                raise IndexCorruptError(f"a stored vector has {vectors.shape[1]} dimensions, expected {self.dimension}")
            self._faiss.add_with_ids(vectors, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))

    def _empty_faiss(self, spec: VectorIndexSpec = FLAT) -> Any:
        return new_vector_index(spec, self.dimension)

    def _load_or_rebuild_faiss(self) -> Any:
        manifest = self.path / MANIFEST_FILE
        faiss_path = self.path / FAISS_FILE
        generation = self.generation()
        count = self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        try:
            recorded = json.loads(manifest.read_text())
            matches = recorded.get("generation") == generation and recorded.get("vector_backend", "faiss") == "faiss"
            if matches and faiss_path.is_file():
                loaded = faiss.read_index(str(faiss_path))
                # read_index already returns the concrete class; wrapping it again with
                # downcast_index would let the original owner free the C++ object. Any kind this
                # version builds is served as it is: only a rebuild changes the kind.
                if spec_of(loaded) is not None and loaded.ntotal == count and loaded.d == self.dimension:
                    configure_search(loaded, self.vector_policy)
                    return loaded
        except (OSError, json.JSONDecodeError, RuntimeError):
            pass
        return self._rebuild_faiss()

    # -- Qdrant ------------------------------------------------------------------------------

    def _busy_error(self) -> VectorStoreBusyError:
        return VectorStoreBusyError(
            f"index {self.name!r} keeps its vectors in embedded Qdrant ({self.path / QDRANT_DIR}), which another"
            " client (another process) has open: embedded Qdrant allows one per folder. Wait for it to finish,"
            " or run a Qdrant server and set qdrant_url"
        )

    def _embedded_qdrant_held(self) -> bool:
        """Whether another client holds the embedded folder's lock (the one the Qdrant client takes)."""
        lock = self.path / QDRANT_DIR / ".lock"
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

    def _new_qdrant(self) -> VectorStore:
        if self._qdrant_url is None and self._embedded_qdrant_held():
            raise self._busy_error()
        try:
            return open_vector_store(
                "qdrant", self.path, self.dimension, qdrant_url=self._qdrant_url, collection=self._collection
            )
        except RuntimeError as exc:
            if self._qdrant_url is None and "already accessed" in str(exc):
                raise self._busy_error() from exc
            raise

    def _open_qdrant(self) -> None:
        """Open the collection; rebuild it when it is behind the store (writer) or serve FAISS (reader)."""
        store = self._new_qdrant()
        try:
            try:
                recorded = json.loads((self.path / MANIFEST_FILE).read_text())
            except (OSError, json.JSONDecodeError):
                recorded = {}
            count = int(self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0])
            current = (
                recorded.get("vector_backend") == "qdrant"
                and recorded.get("generation") == self.generation()
                and store.count() == count
            )
        except BaseException:
            store.close()  # an embedded folder stays locked until its client is closed
            raise
        if current:
            self._qdrant = store
        elif self._read_only:
            # A reader must not write the collection: it serves exact results from SQLite's vectors.
            store.close()
            self._faiss = self._rebuild_faiss()
        else:
            self._qdrant = self._rebuild_qdrant(store)

    def _rebuild_qdrant(self, store: VectorStore) -> VectorStore:
        """Drop the collection (only ever this index's own) and load every stored vector into a new one."""
        store.close()
        if self._qdrant_url is None:
            shutil.rmtree(self.path / QDRANT_DIR, ignore_errors=True)  # the folder is this index's alone
        elif self._collection == self.name:
            # Named before names were unique: another data directory's index of this name may be
            # using it, so it stays, and this index moves to a collection of its own.
            self._collection = _new_collection_name(self.name)
            with self._transaction() as conn:  # moves the generation: readers reopen on the new name
                conn.execute(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (COLLECTION_KEY, self._collection),
                )
        else:
            from qdrant_client import QdrantClient  # optional dependency, like in indexes._qdrant

            client = QdrantClient(url=self._qdrant_url)
            try:
                client.delete_collection(self._collection)
            finally:
                client.close()
        store = self._new_qdrant()
        try:
            for ids, vectors, page_ids in self._vector_batches():
                store.add(ids, vectors, page_ids)
        except BaseException:
            store.close()
            raise
        return store

    def _vector_batches(self, size: int = 4096) -> Iterator[VectorBatch]:
        cursor = self._conn.execute("SELECT id, page_id, vector FROM passages ORDER BY id")
        while rows := cursor.fetchmany(size):
            vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
            if vectors.shape[1] != self.dimension:
                raise IndexCorruptError(f"a stored vector has {vectors.shape[1]} dimensions, expected {self.dimension}")
            yield [int(r[0]) for r in rows], vectors, [int(r[1]) for r in rows]

    def _rebuild_faiss(self, spec: VectorIndexSpec | None = None) -> Any:
        """Build the vector index from the stored vectors, of ``spec`` or the kind the policy gives the count."""
        policy = self.vector_policy
        if spec is None:
            spec = policy.choose(int(self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]))
        index = self._empty_faiss(spec)

        def vectors_of(rows: Sequence[tuple[Any, ...]]) -> np.ndarray[Any, np.dtype[np.float32]]:
            vectors = np.vstack([np.frombuffer(r[-1], dtype=np.float32) for r in rows])
            if vectors.shape[1] != self.dimension:
                raise IndexCorruptError(f"a stored vector has {vectors.shape[1]} dimensions, expected {self.dimension}")
            return vectors

        if not index.is_trained:
            # A seeded sample of ids, read in chunks: a million vectors never sit in memory at once.
            ids = np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM passages")), dtype=np.int64)
            rng = np.random.default_rng(policy.seed)
            chosen = np.sort(rng.choice(ids, size=policy.train_size(spec.nlist, len(ids)), replace=False))
            sample = [
                vectors_of(
                    self._conn.execute(
                        f"SELECT id, vector FROM passages WHERE id IN ({','.join('?' * len(chunk))})",  # noqa: S608 # placeholders only
                        chunk.tolist(),
                    ).fetchall()
                )
                for chunk in np.array_split(chosen, max(1, len(chosen) // 500))
            ]
            train_vector_index(index, np.vstack(sample), seed=policy.seed)
        cursor = self._conn.execute("SELECT id, vector FROM passages ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            index.add_with_ids(vectors_of(rows), ids)
        configure_search(index, policy)
        return index

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it moves the generation only when it changed a row."""
        if self._read_only:
            raise PermissionError(f"index {self.name!r} was opened read-only")
        with self._lock, self._conn:
            # IMMEDIATE takes the write lock before the first read, so what a method reads
            # cannot change under it before it writes.
            self._conn.execute("BEGIN IMMEDIATE")
            before = self._conn.total_changes
            yield self._conn
            if self._conn.total_changes != before:
                self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")

    @staticmethod
    def _delete_page_rows(conn: sqlite3.Connection, page_id: int) -> list[int]:
        """Delete one page row (its passages cascade); return the ids of the passages it had."""
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM passages WHERE page_id=?", (page_id,))]
        conn.execute("DELETE FROM pages WHERE id=?", (page_id,))
        return ids

    def _remove_vectors(self, passage_ids: Sequence[int]) -> None:
        if not passage_ids:
            return
        if self._qdrant is not None:
            self._qdrant.remove(passage_ids)
        else:
            self._faiss.remove_ids(np.asarray(passage_ids, dtype=np.int64))

    @staticmethod
    def _page_row(page: PageRecord) -> dict[str, object]:
        """The ``pages`` row of a record, column by column (SimHash signed, ``gone`` as 0/1)."""
        row: dict[str, object] = {name: getattr(page, name) for name in _PAGE_FIELDS}
        row["fetched_url"] = page.fetched_url or page.url
        row["fetched_at"] = page.fetched_at or _now()
        row["simhash"] = None if page.simhash is None else _simhash_to_sql(page.simhash)
        row["gone"] = int(page.gone)
        return row

    @contextmanager
    def _committed(self) -> Iterator[sqlite3.Connection]:
        """A connection for a short lookup of committed rows that never waits on this index's lock.

        A writer's lock is held through each commit and each flush (seconds when the vector index
        is rebuilt): the crawler asks for validators on its event loop and the pipeline checks each
        page it extracts (stored version, duplicates) while a batch is stored, so these lookups go
        through a read-only connection of their own (WAL lets it read while the writer writes).
        """
        if self._read_only:
            with self._lock:
                yield self._conn
            return
        with self._lookup_lock:
            if self._lookup is None:
                self._lookup = self._connect(self.path / DB_FILE, read_only=True)
            yield self._lookup

    def page_version(self, url: str) -> tuple[str, str] | None:
        """``(content_hash, chunking)`` of the stored page: equal values mean nothing to redo."""
        with self._committed() as conn:
            row = conn.execute(
                f"SELECT g.content_hash, {self._column['chunking']} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def validators(self, url: str) -> tuple[str | None, str | None] | None:
        """``(etag, last_modified)`` of the stored page, for a conditional GET; None when not stored."""
        with self._committed() as conn:
            row = conn.execute(
                f"SELECT {self._column['etag']}, {self._column['last_modified']} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        return (row[0], row[1]) if row else None

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
        row = self._page_row(page)
        # The lock spans the commit and the FAISS update, so no search sees one without the other.
        with self._lock:
            with self._transaction() as conn:
                old = conn.execute("SELECT id FROM pages WHERE url=?", (page.url,)).fetchone()
                old_ids = self._delete_page_rows(conn, old[0]) if old is not None else []
                # The URL is a page now, not an alias; aliases *of* it stay (they follow the URL).
                conn.execute("DELETE FROM aliases WHERE url=?", (page.url,))
                cursor = conn.execute(
                    f"INSERT INTO pages ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608 # column names only
                    list(row.values()),
                )
                page_id = int(cursor.lastrowid or 0)
                new_ids: list[int] = []
                for passage, vector in zip(passages, vectors, strict=True):
                    cur = conn.execute(
                        'INSERT INTO passages (page_id, start, "end", heading, text, vector) VALUES (?,?,?,?,?,?)',
                        (page_id, passage.start, passage.end, passage.heading, passage.text, vector.tobytes()),
                    )
                    new_ids.append(int(cur.lastrowid or 0))
            # Memory follows only once SQLite accepted the change (the inner `with` commits on exit).
            self._remove_vectors(old_ids)
            if new_ids and self._qdrant is not None:
                self._qdrant.add(new_ids, vectors, [page_id] * len(new_ids))
            elif new_ids:
                self._faiss.add_with_ids(vectors, np.asarray(new_ids, dtype=np.int64))
        return UpsertResult(page_id=page_id, passages=len(new_ids))

    def remove_page(self, url: str) -> bool:
        """Remove one page, its passages, vectors and aliases; False when it was not stored."""
        with self._lock:
            with self._transaction() as conn:
                row = conn.execute("SELECT id FROM pages WHERE url=?", (url,)).fetchone()
                if row is None:
                    return False
                ids = self._delete_page_rows(conn, row[0])
                conn.execute("DELETE FROM aliases WHERE page_url=?", (url,))
            self._remove_vectors(ids)
        return True

    def remove_pages(self, pattern: str) -> list[str]:
        """Remove the pages whose URL is ``pattern`` or matches it as a glob; return their URLs, sorted.

        A pattern that is exactly a stored page or alias URL removes only that URL, since URLs
        often contain ``?`` and ``[``; any other pattern is a case-sensitive :func:`fnmatch` glob
        (``https://docs.example/old/*``). Matching pages go in one transaction with their
        passages, vectors and aliases; aliases whose own URL matches go too.
        """
        with self._lock:
            with self._transaction() as conn:
                pages = conn.execute("SELECT id, url FROM pages").fetchall()
                alias_urls = [str(r[0]) for r in conn.execute("SELECT url FROM aliases")]
                exact = pattern in alias_urls or any(url == pattern for _, url in pages)

                def matches(url: str) -> bool:
                    return url == pattern if exact else fnmatchcase(url, pattern)

                removed = sorted(str(url) for _, url in pages if matches(url))
                ids = [i for page_id, url in pages if matches(url) for i in self._delete_page_rows(conn, page_id)]
                conn.executemany("DELETE FROM aliases WHERE page_url=?", [(url,) for url in removed])
                conn.executemany("DELETE FROM aliases WHERE url=?", [(url,) for url in alias_urls if matches(url)])
            self._remove_vectors(ids)
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
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE pages SET status=?, fetched_at=?, etag=coalesce(?, etag),"
                " last_modified=coalesce(?, last_modified), gone=CASE WHEN ? < 400 THEN 0 ELSE gone END"
                " WHERE url=?",
                (status, fetched_at or _now(), etag, last_modified, status, url),
            )
        return cursor.rowcount > 0

    def mark_gone(self, url: str, gone: bool = True) -> bool:
        """Mark a kept page as gone from its source (404/410), or no longer; False when not stored."""
        with self._transaction() as conn:
            row = conn.execute("SELECT gone FROM pages WHERE url=?", (url,)).fetchone()
            if row is None:
                return False
            if bool(row[0]) != gone:  # an unchanged flag is no change: the generation stays
                conn.execute("UPDATE pages SET gone=? WHERE url=?", (int(gone), url))
        return True

    # -- aliases -----------------------------------------------------------------------------

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
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM pages WHERE url=?", (url,)).fetchone():
                raise ValueError(f"{url} is a stored page; remove it before recording it as an alias")
            target = conn.execute("SELECT page_url FROM aliases WHERE url=?", (page_url,)).fetchone()
            if target is not None:
                raise ValueError(f"{page_url} is itself an alias of {target[0]}")
            conn.execute(
                "INSERT INTO aliases (url, page_url, kind, created_at) VALUES (?,?,?,?) ON CONFLICT(url)"
                " DO UPDATE SET page_url=excluded.page_url, kind=excluded.kind, created_at=excluded.created_at",
                (url, page_url, kind, _now()),
            )

    def alias_of(self, url: str) -> tuple[str, str] | None:
        """``(page_url, kind)`` when ``url`` is an alias, else None."""
        if not self._has_aliases:
            return None
        with self._lock:
            row = self._conn.execute("SELECT page_url, kind FROM aliases WHERE url=?", (url,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def aliases(self, page_url: str) -> list[tuple[str, str]]:
        """``(url, kind)`` of every alias of ``page_url``, sorted by URL."""
        if not self._has_aliases:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT url, kind FROM aliases WHERE page_url=? ORDER BY url", (page_url,)
            ).fetchall()
        return [(str(url), str(kind)) for url, kind in rows]

    # -- duplicates --------------------------------------------------------------------------

    def page_with_hash(self, content_hash: str, *, exclude_url: str | None = None) -> str | None:
        """The URL of the oldest live (not gone) page with this content hash, other than ``exclude_url``."""
        if not content_hash:
            return None  # pages stored without a hash are not all duplicates of each other
        with self._committed() as conn:
            row = conn.execute(
                f"SELECT g.url FROM pages g WHERE g.content_hash=? AND g.url IS NOT ? AND {self._column['gone']}=0"  # noqa: S608 # column names only
                " ORDER BY g.id LIMIT 1",
                (content_hash, exclude_url),
            ).fetchone()
        return str(row[0]) if row else None

    def near_duplicate(self, simhash: int, *, max_distance: int = 3, exclude_url: str | None = None) -> str | None:
        """The URL of the live page whose SimHash is closest to ``simhash``, within ``max_distance`` bits.

        Ties go to the oldest page. A linear scan of a covering index: about 6 ms for 10k pages,
        and it reads the store, so it is right however many processes write.
        """
        target = _simhash_to_sql(simhash)
        if not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be between 0 and 64, not {max_distance}")
        if self._column["simhash"] == "NULL":
            return None  # an unmigrated store has no SimHashes
        best: tuple[int, int, str] | None = None
        with self._committed() as conn:
            rows = conn.execute("SELECT id, url, simhash FROM pages WHERE simhash IS NOT NULL AND gone=0").fetchall()
        for page_id, url, value in rows:
            distance = _hamming(value, target)
            if distance <= max_distance and url != exclude_url:
                candidate = (distance, page_id, url)
                best = candidate if best is None else min(best, candidate)
        return best[2] if best else None

    def flush(self) -> Manifest:
        """Persist the vectors (FAISS file, or Qdrant) and the manifest so the next open needs no rebuild.

        When the passage count has crossed a threshold of :attr:`vector_policy`, the vector index is
        first rebuilt as the kind the count calls for (about 3 s at 100k passages, 30 s at 1M on two
        cores); searches wait for it.
        """
        with self._lock:
            if self._read_only:
                raise PermissionError(f"index {self.name!r} was opened read-only")
            if self._qdrant is not None:
                self._qdrant.persist()
                manifest = self.manifest()
                atomic_write_bytes(self.path / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=2).encode())
                self._prune_removed_log()
                return manifest
            # The kind follows the count here, not on every add: a rebuild trains on the whole store.
            current = spec_of(self._faiss)
            wanted = self.vector_policy.choose(int(self._faiss.ntotal), current)
            if wanted != current:
                self._faiss = self._rebuild_faiss(wanted)
            write_vector_index(self._faiss, self.path / FAISS_FILE)
            manifest = self.manifest()
            atomic_write_bytes(self.path / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=2).encode())
            self._prune_removed_log()
            return manifest

    def _prune_removed_log(self) -> None:
        """Keep the last :data:`_REMOVED_LOG_KEEP` removals; not a content change, so the generation stays."""
        with self._lock, self._conn:
            self._conn.execute(
                "DELETE FROM removed_passages WHERE seq <= (SELECT max(seq) FROM removed_passages) - ?",
                (_REMOVED_LOG_KEEP,),
            )

    # -- reading -----------------------------------------------------------------------------

    def page_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])

    def manifest(self) -> Manifest:
        with self._lock:
            pages = self._conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
            passages = self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
            generation = self.generation()
        return Manifest(
            name=self.name,
            embedding_model=self.embedding_model,
            dimension=self.dimension,
            pages=int(pages),
            passages=int(passages),
            generation=generation,
            faiss_index=FLAT.factory if self._faiss is None else (spec_of(self._faiss) or FLAT).factory,
            updated_at=_now(),
            vector_backend="qdrant" if self._qdrant is not None else "faiss",
        )

    @property
    def vector_count(self) -> int:
        with self._lock:
            return self._qdrant.count() if self._qdrant is not None else int(self._faiss.ntotal)

    def search(self, query: Vectors, k: int = 5, *, page_ids: Collection[int] | None = None) -> list[SearchHit]:
        """Return the ``k`` passages closest to one query vector, best first; only of ``page_ids`` unless None."""
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.dimension:
            raise EmbedderMismatchError(f"query has {vector.shape[1]} dimensions, index has {self.dimension}")
        if k <= 0 or (page_ids is not None and not page_ids):
            return []
        with self._lock:
            if self._qdrant is not None:
                return self._hits(self._qdrant.search(vector[0], k, page_ids=page_ids))
            if self._faiss.ntotal == 0:
                return []
            params: Any = None
            limit = min(k, int(self._faiss.ntotal))
            if page_ids is not None:
                marks = ",".join("?" * len(page_ids))  # only placeholders are interpolated into the SQL
                allowed = np.fromiter(
                    (
                        r[0]
                        for r in self._conn.execute(
                            f"SELECT id FROM passages WHERE page_id IN ({marks})",  # noqa: S608 # placeholders only
                            [int(p) for p in page_ids],
                        )
                    ),
                    dtype=np.int64,
                )
                limit = min(limit, len(allowed))
                if limit <= 0:
                    return []
                ivf = isinstance(self._faiss, faiss.IndexIVF)
                # The selector filters inside the scan, so a few pages still get their true top k.
                params = faiss.SearchParametersIVF() if ivf else faiss.SearchParameters()
                params.sel = faiss.IDSelectorBatch(allowed)
                if ivf:
                    params.nprobe = int(self._faiss.nlist)
            scores, ids = self._faiss.search(vector, limit, params=params)
            found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            return self._hits(found)

    def passages_by_id(self, passage_ids: Sequence[int]) -> list[SearchHit]:
        with self._lock:
            return self._hits([(i, 0.0) for i in passage_ids])

    def _hits(self, found: Sequence[tuple[int, float]]) -> list[SearchHit]:
        if not found:
            return []
        marks = ",".join("?" * len(found))  # only placeholders are interpolated into the SQL
        query = self._hits_query.replace("{marks}", marks)
        rows = self._conn.execute(query, [i for i, _ in found]).fetchall()
        by_id = {row[0]: row for row in rows}
        hits = []
        for passage_id, score in found:
            row = by_id.get(passage_id)
            if row is None:
                continue
            hits.append(
                SearchHit(
                    passage_id=passage_id,
                    score=score,
                    text=row[1],
                    start=row[2],
                    end=row[3],
                    heading=row[4],
                    url=row[5],
                    title=row[6],
                    page_id=row[7],
                    metadata={
                        name: _metadata_value(name, value)
                        for name, value in zip(_METADATA_FIELDS, row[8:], strict=True)
                    },
                )
            )
        return hits

    def page(self, url: str) -> PageRecord | None:
        columns = ", ".join(self._column[name] for name in _PAGE_FIELDS)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {columns} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        if row is None:
            return None
        values = dict(zip(_PAGE_FIELDS, row, strict=True))
        if values["simhash"] is not None:
            values["simhash"] = _simhash_from_sql(values["simhash"])
        values["gone"] = bool(values["gone"])
        return PageRecord(**values)

    def unmentioned(self, terms: Sequence[str]) -> list[str]:
        """The terms that occur in no passage of the index (case-insensitive substring match).

        A full scan per term (~50 ms on 14k passages), so callers pass a handful of rare terms.
        """
        missing = []
        with self._lock:
            for term in dict.fromkeys(t.lower() for t in terms if t):
                row = self._conn.execute(
                    "SELECT 1 FROM passages WHERE instr(lower(text), ?) > 0 LIMIT 1", (term,)
                ).fetchone()
                if row is None:
                    missing.append(term)
        return missing

    def page_urls(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT url FROM pages ORDER BY id")]

    def check_integrity(self) -> list[str]:
        """Return a list of problems (empty when vectors, passages and pages agree)."""
        problems = []
        with self._lock:
            count = self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
            vectors = self.vector_count
            if count != vectors:
                problems.append(f"{vectors} vectors but {count} passages")
            if self._faiss is not None and not self._faiss.is_trained:
                problems.append("the vector index is not trained")
            dupes = self._conn.execute(
                'SELECT COUNT(*) FROM (SELECT page_id, start, "end" FROM passages'
                ' GROUP BY page_id, start, "end" HAVING COUNT(*) > 1)'
            ).fetchone()[0]
            if dupes:
                problems.append(f"{dupes} duplicated passages")
            orphans = self._conn.execute(
                "SELECT COUNT(*) FROM passages WHERE page_id NOT IN (SELECT id FROM pages)"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{orphans} passages without a page")
            if self._has_aliases:
                problems.extend(self._alias_problems())
        return problems

    def _alias_problems(self) -> list[str]:
        problems = []
        dangling = self._conn.execute(
            "SELECT COUNT(*) FROM aliases WHERE page_url NOT IN (SELECT url FROM pages)"
        ).fetchone()[0]
        if dangling:
            problems.append(f"{dangling} aliases of pages that are not stored")
        shadowed = self._conn.execute("SELECT COUNT(*) FROM aliases WHERE url IN (SELECT url FROM pages)").fetchone()[0]
        if shadowed:
            problems.append(f"{shadowed} aliases whose URL is also a stored page")
        return problems
