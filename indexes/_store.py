"""The on-disk index: a SQLite passage store, a FAISS vector index and a manifest.

Layout of ``<data_dir>/indexes/<name>/``::

    passages.sqlite   source of truth: pages, passages and their vectors (WAL mode)
    vectors.faiss     IndexIDMap2 over inner-product vectors, ids = passage ids (derived)
    manifest.json     embedding model, dimension, counts and the store generation

SQLite transactions make every page change atomic: a page's old passages are replaced by its new
ones in one transaction, so a crash leaves each page either fully present or absent. The FAISS
file is derived data, written to a temporary file and moved into place with ``os.replace``; the
manifest written after it records the store generation it matches. A reader that finds the FAISS
file older than the store (a crash between the two writes, or a writer still running) rebuilds
the vectors from SQLite instead of serving stale or partial results.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexes._embedder import Vectors
from indexes._exceptions import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from indexes._types import PageRecord, PassageRecord, SearchHit

FORMAT_VERSION = 1
INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DB_FILE = "passages.sqlite"
FAISS_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"

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
    chunking TEXT NOT NULL DEFAULT '',
    fetched_at TEXT NOT NULL
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
"""


_HITS_QUERY = (
    'SELECT p.id, p.text, p.start, p."end", p.heading, g.url, g.title, g.id,'
    " g.author, g.date, g.sitename, g.language, g.fetched_at"
    " FROM passages p JOIN pages g ON g.id = p.page_id WHERE p.id IN ({marks})"
)


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
    faiss_index: str = "IDMap2,Flat"
    format_version: int = FORMAT_VERSION
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "embedding_model": self.embedding_model,
            "dimension": self.dimension,
            "metric": self.metric,
            "faiss_index": self.faiss_index,
            "pages": self.pages,
            "passages": self.passages,
            "generation": self.generation,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class UpsertResult:
    page_id: int
    passages: int


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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

    Methods are thread-safe; one process should write at a time.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, read_only: bool) -> None:
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
        self._faiss = self._load_or_rebuild_faiss()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def create_or_open(cls, data_dir: Path, name: str, *, embedding_model: str, dimension: int) -> PassageIndex:
        path = index_dir(data_dir, name)
        path.mkdir(parents=True, exist_ok=True)
        conn = cls._connect(path / DB_FILE, read_only=False)
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('embedding_model', ?)", (embedding_model,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('dimension', ?)", (str(dimension),))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
        index = cls(path, conn, read_only=False)
        index.check_embedder(embedding_model, dimension)
        if not (path / MANIFEST_FILE).exists():
            index.flush()
        return index

    @classmethod
    def open(cls, data_dir: Path, name: str, *, read_only: bool = True) -> PassageIndex:
        path = index_dir(data_dir, name)
        if not (path / DB_FILE).is_file():
            raise IndexNotFoundError(name)
        return cls(path, cls._connect(path / DB_FILE, read_only=read_only), read_only=read_only)

    @staticmethod
    def _connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
        if read_only:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(db_path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
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

    # -- FAISS -------------------------------------------------------------------------------

    def generation(self) -> int:
        """The store generation: incremented by every committed change."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _empty_faiss(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    def _load_or_rebuild_faiss(self) -> faiss.IndexIDMap2:
        manifest = self.path / MANIFEST_FILE
        faiss_path = self.path / FAISS_FILE
        generation = self.generation()
        count = self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        try:
            recorded = json.loads(manifest.read_text())
            if recorded.get("generation") == generation and faiss_path.is_file():
                loaded = faiss.read_index(str(faiss_path))
                # read_index already returns the concrete class; wrapping it again with
                # downcast_index would let the original owner free the C++ object.
                if isinstance(loaded, faiss.IndexIDMap2) and loaded.ntotal == count and loaded.d == self.dimension:
                    return loaded
        except (OSError, json.JSONDecodeError, RuntimeError):
            pass
        return self._rebuild_faiss()

    def _rebuild_faiss(self) -> faiss.IndexIDMap2:
        index = self._empty_faiss()
        cursor = self._conn.execute("SELECT id, vector FROM passages ORDER BY id")
        while rows := cursor.fetchmany(4096):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            if vectors.shape[1] != self.dimension:
                raise IndexCorruptError(f"a stored vector has {vectors.shape[1]} dimensions, expected {self.dimension}")
            index.add_with_ids(vectors, ids)
        return index

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._read_only:
            raise PermissionError(f"index {self.name!r} was opened read-only")
        with self._lock, self._conn:
            self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            yield self._conn

    def page_version(self, url: str) -> tuple[str, str] | None:
        """``(content_hash, chunking)`` of the stored page: equal values mean nothing to redo."""
        with self._lock:
            row = self._conn.execute("SELECT content_hash, chunking FROM pages WHERE url=?", (url,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

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
        with self._transaction() as conn:
            old = conn.execute("SELECT id, content_hash FROM pages WHERE url=?", (page.url,)).fetchone()
            old_ids: list[int] = []
            if old is not None:
                old_ids = [r[0] for r in conn.execute("SELECT id FROM passages WHERE page_id=?", (old[0],))]
                conn.execute("DELETE FROM pages WHERE id=?", (old[0],))
            cursor = conn.execute(
                "INSERT INTO pages (url, fetched_url, title, text, author, date, sitename, language,"
                " content_hash, chunking, fetched_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    page.url,
                    page.fetched_url or page.url,
                    page.title,
                    page.text,
                    page.author,
                    page.date,
                    page.sitename,
                    page.language,
                    page.content_hash,
                    page.chunking,
                    page.fetched_at or _now(),
                ),
            )
            page_id = int(cursor.lastrowid or 0)
            new_ids: list[int] = []
            for passage, vector in zip(passages, vectors, strict=True):
                cur = conn.execute(
                    'INSERT INTO passages (page_id, start, "end", heading, text, vector) VALUES (?,?,?,?,?,?)',
                    (page_id, passage.start, passage.end, passage.heading, passage.text, vector.tobytes()),
                )
                new_ids.append(int(cur.lastrowid or 0))
            # Memory follows only once SQLite accepted the change (the `with` commits on exit).
        if old_ids:
            self._faiss.remove_ids(np.asarray(old_ids, dtype=np.int64))  # type: ignore[arg-type] # faiss wraps arrays
        if new_ids:
            self._faiss.add_with_ids(vectors, np.asarray(new_ids, dtype=np.int64))
        return UpsertResult(page_id=page_id, passages=len(new_ids))

    def remove_page(self, url: str) -> bool:
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM pages WHERE url=?", (url,)).fetchone()
            if row is None:
                return False
            ids = [r[0] for r in conn.execute("SELECT id FROM passages WHERE page_id=?", (row[0],))]
            conn.execute("DELETE FROM pages WHERE id=?", (row[0],))
        if ids:
            self._faiss.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type] # faiss wraps arrays
        return True

    def flush(self) -> Manifest:
        """Persist the FAISS index and the manifest so the next open needs no rebuild."""
        with self._lock:
            if self._read_only:
                raise PermissionError(f"index {self.name!r} was opened read-only")
            _atomic_write_bytes(self.path / FAISS_FILE, faiss.serialize_index(self._faiss).tobytes())
            manifest = self.manifest()
            _atomic_write_bytes(self.path / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=2).encode())
            return manifest

    # -- reading -----------------------------------------------------------------------------

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
            updated_at=_now(),
        )

    @property
    def vector_count(self) -> int:
        return int(self._faiss.ntotal)

    def search(self, query: Vectors, k: int = 5) -> list[SearchHit]:
        """Return the ``k`` passages closest to one query vector, best first."""
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.dimension:
            raise EmbedderMismatchError(f"query has {vector.shape[1]} dimensions, index has {self.dimension}")
        with self._lock:
            if self._faiss.ntotal == 0 or k <= 0:
                return []
            scores, ids = self._faiss.search(vector, min(k, int(self._faiss.ntotal)))
            found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            return self._hits(found)

    def passages_by_id(self, passage_ids: Sequence[int]) -> list[SearchHit]:
        with self._lock:
            return self._hits([(i, 0.0) for i in passage_ids])

    def _hits(self, found: Sequence[tuple[int, float]]) -> list[SearchHit]:
        if not found:
            return []
        marks = ",".join("?" * len(found))  # only placeholders are interpolated into the SQL
        query = _HITS_QUERY.format(marks=marks)
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
                        "author": row[8],
                        "date": row[9],
                        "sitename": row[10],
                        "language": row[11],
                        "fetched_at": row[12],
                    },
                )
            )
        return hits

    def page(self, url: str) -> PageRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT url, title, text, fetched_url, author, date, sitename, language, content_hash,"
                " fetched_at, chunking FROM pages WHERE url=?",
                (url,),
            ).fetchone()
        if row is None:
            return None
        return PageRecord(
            url=row[0],
            title=row[1],
            text=row[2],
            fetched_url=row[3],
            author=row[4],
            date=row[5],
            sitename=row[6],
            language=row[7],
            content_hash=row[8],
            fetched_at=row[9],
            chunking=row[10],
        )

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
            if count != self._faiss.ntotal:
                problems.append(f"{self._faiss.ntotal} vectors but {count} passages")
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
        return problems
