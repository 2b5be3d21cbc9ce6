"""The SQLite passage store: every SQL statement on ``passages.sqlite`` an index runs lives here.

Over the ~450-line guide because it is the one place for the store's SQL (pages, passages and their
vectors, aliases, duplicates, the change log): splitting it would spread the schema's knowledge
over several modules again.

SQLite transactions make every page change atomic: a page's old passages are replaced by its new
ones in one transaction, so a crash leaves each page either fully present or absent. Every
committed change moves the ``generation`` in ``meta``; derived files (vectors, manifest) record the
generation they match. Deleted passage ids are logged in ``removed_passages`` (by a trigger), so a
reader catches up by reading only what changed (:meth:`PassageStore.changes_since`).

Besides pages, the store keeps aliases: URLs that are not indexed themselves because their
content duplicates a stored page (exactly or nearly) or because they redirect to one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from citeline.indexes._embedder import Vectors
from citeline.indexes._exceptions import IndexCorruptError
from citeline.indexes._layout import DB_FILE
from citeline.indexes._manifest import now
from citeline.indexes._schema import COLLECTION_KEY, UNMIGRATED_VALUE, connect, has_table, page_columns
from citeline.indexes._simhash import hamming_distance, simhash_from_sql, simhash_to_sql
from citeline.indexes._types import PDF_PAGE_KEY, PageRecord, PassageRecord, SearchHit
from citeline.indexes._vectorstore import VectorBatch

REMOVED_LOG_KEEP = 500_000
"""Removals a writer's flush keeps in the log; a reader further behind reopens (and rebuilds)."""

PAGE_FIELDS = (
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

_PDF_PAGE = (
    "CASE WHEN instr(g.text, char(12)) > 0"
    " THEN 1 + p.start - length(replace(substr(g.text, 1, p.start), char(12), '')) END"
)
# A PDF's text ends each page with a form feed, which no other page's text holds (``ingest.pdf``):
# the page of a passage is one plus the form feeds before it. Computed for the few hits a question
# reads rather than stored, so indexes built before PDFs open unchanged.
_HITS_QUERY = (
    'SELECT p.id, p.text, p.start, p."end", p.heading, g.url, g.title, g.id, {metadata}, '  # noqa: S608 # constants only
    + _PDF_PAGE
    + " AS pdf_page"
    " FROM passages p JOIN pages g ON g.id = p.page_id WHERE p.id IN ({marks})"
)


@dataclass(frozen=True, slots=True)
class SyncPoint:
    """Where a reader's vectors stand: the store as of one generation."""

    generation: int
    max_passage_id: int
    """The highest passage id then: a higher one was added since."""
    removed_seq: int
    """The last ``removed_passages`` entry then: later ones were removed (or replaced) since."""


def _metadata_value(name: str, value: object) -> str | None:
    """A provenance value as the string a citation shows (``gone`` as ``"true"``/``"false"``)."""
    if name == "gone":
        return "true" if value else "false"
    return None if value is None else str(value)


def _page_row(page: PageRecord) -> dict[str, object]:
    """The ``pages`` row of a record, column by column (SimHash signed, ``gone`` as 0/1)."""
    row: dict[str, object] = {name: getattr(page, name) for name in PAGE_FIELDS}
    row["fetched_url"] = page.fetched_url or page.url
    row["fetched_at"] = page.fetched_at or now()
    row["simhash"] = None if page.simhash is None else simhash_to_sql(page.simhash)
    row["gone"] = int(page.gone)
    return row


def read_passage_texts(db_path: Path) -> tuple[int, list[tuple[int, str, str, str]]]:
    """``(generation, [(id, page title, heading, text)])`` of every passage in id order, read in one
    snapshot through a read-only connection of its own (a BM25 build never waits on the index lock)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        with conn:
            conn.execute("BEGIN")  # one snapshot: the generation matches the passages read
            row = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
            rows = conn.execute(
                "SELECT p.id, g.title, p.heading, p.text FROM passages p JOIN pages g ON g.id = p.page_id ORDER BY p.id"
            ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"cannot read the passages of {db_path}: {exc}") from exc
    finally:
        conn.close()
    return (int(row[0]) if row else 0), [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def stored_vectors(conn: sqlite3.Connection, passage_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, Vectors]]:
    """``page_id`` and stored vector of each passage still in the store, through the caller's connection."""
    if not passage_ids:
        return {}, {}
    marks = ",".join("?" * len(passage_ids))  # only placeholders are interpolated into the SQL
    rows = conn.execute(
        f"SELECT id, page_id, vector FROM passages WHERE id IN ({marks})",  # noqa: S608
        list(passage_ids),
    ).fetchall()
    pages = {int(r[0]): int(r[1]) for r in rows}
    vectors = {int(r[0]): np.frombuffer(r[2], dtype=np.float32) for r in rows}
    return pages, vectors


class PassageStore:
    """One open ``passages.sqlite`` (already migrated when writable, see :func:`~indexes._schema.ensure_schema`).

    ``lock`` guards the connection; the index holds it across a commit and its vector update.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, read_only: bool, name: str) -> None:
        self.path = path
        self.name = name
        self.read_only = read_only
        self.lock = threading.RLock()
        self._conn = conn
        self._lookup: sqlite3.Connection | None = None
        """A writer's second, read-only connection for the crawler's per-page lookups (see :meth:`committed`)."""
        self._lookup_lock = threading.Lock()
        self._inode = (path / DB_FILE).stat().st_ino
        self.read_columns()

    def close(self) -> None:
        with self.lock:
            self._conn.close()
            with self._lookup_lock:
                if self._lookup is not None:
                    self._lookup.close()
                    self._lookup = None

    # -- meta and change tracking ------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self.lock:
            return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def identity(self) -> dict[str, str]:
        """The ``meta`` rows but the generation: what the index is, which only a reopen follows."""
        with self.lock:
            rows = self._conn.execute("SELECT key, value FROM meta WHERE key != 'generation'")
            return {str(k): str(v) for k, v in rows}

    def generation(self) -> int:
        """The store generation: incremented by every committed change."""
        with self.lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def replaced(self) -> bool:
        """Whether the store file is gone or another one now (the index was removed, maybe built again)."""
        try:
            return (self.path / DB_FILE).stat().st_ino != self._inode
        except FileNotFoundError:
            return True

    def read_columns(self) -> None:
        """Learn which migrated columns and tables the store has (a reader's may lack some)."""
        with self.lock:
            present = page_columns(self._conn)
            self._column = {
                name: f"g.{name}" if name in present else UNMIGRATED_VALUE.get(name, "NULL") for name in PAGE_FIELDS
            }
            self.has_aliases = has_table(self._conn, "aliases")
            metadata = ", ".join(self._column[f] for f in _METADATA_FIELDS)
            self._hits_query = _HITS_QUERY.replace("{metadata}", metadata)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold one read transaction, so a reader's queries all see the same commit (a writer's see its own)."""
        with self.lock:
            if not self.read_only or self._conn.in_transaction:
                yield
                return
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.rollback()  # nothing was written: this only ends the snapshot

    def sync_point(self) -> SyncPoint:
        with self.lock:
            removed = None
            if has_table(self._conn, "sqlite_sequence"):
                removed = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='removed_passages'").fetchone()
            return SyncPoint(
                generation=self.generation(),
                max_passage_id=int(self._conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]),
                removed_seq=int(removed[0]) if removed else 0,
            )

    def log_reaches(self, since: SyncPoint, point: SyncPoint) -> bool:
        """Whether the removal log still holds every entry between two sync points (a flush prunes it)."""
        with self.lock:
            if not has_table(self._conn, "removed_passages"):
                return False
            logged = self._conn.execute(
                "SELECT COUNT(*) FROM removed_passages WHERE seq > ?", (since.removed_seq,)
            ).fetchone()[0]
        return bool(logged == point.removed_seq - since.removed_seq)

    def changes_since(self, since: SyncPoint) -> tuple[list[int], Iterator[VectorBatch]]:
        """The passage ids removed after ``since``, and the vectors of passages added after it.

        A removed id can come back (SQLite reuses the highest ids after a delete): it is among both.
        """
        with self.lock:
            removed = [
                int(r[0])
                for r in self._conn.execute(
                    "SELECT DISTINCT passage_id FROM removed_passages WHERE seq > ?", (since.removed_seq,)
                )
            ]
            cursor = self._conn.execute(
                "SELECT id, page_id, vector FROM passages WHERE id > ?"
                " OR id IN (SELECT passage_id FROM removed_passages WHERE seq > ?) ORDER BY id",
                (since.max_passage_id, since.removed_seq),
            )
        return removed, self._batches(cursor)

    def prune_removed_log(self) -> None:
        """Keep the last :data:`REMOVED_LOG_KEEP` removals; not a content change, so the generation stays."""
        with self.lock, self._conn:
            self._conn.execute(
                "DELETE FROM removed_passages WHERE seq <= (SELECT max(seq) FROM removed_passages) - ?",
                (REMOVED_LOG_KEEP,),
            )

    def record_collection(self, collection: str) -> None:
        """Move the index to another Qdrant collection; moves the generation, so readers reopen on it."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (COLLECTION_KEY, collection),
            )

    # -- vectors -----------------------------------------------------------------------------

    def _batches(self, cursor: sqlite3.Cursor, size: int = 4096) -> Iterator[VectorBatch]:
        """``(ids, vectors, page ids)`` batches of ``id, page_id, vector`` rows."""
        dimension = int(self.meta()["dimension"])
        while True:
            with self.lock:
                rows = cursor.fetchmany(size)
            if not rows:
                return
            vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
            if vectors.shape[1] != dimension:
                raise IndexCorruptError(f"a stored vector has {vectors.shape[1]} dimensions, expected {dimension}")
            yield [int(r[0]) for r in rows], vectors, [int(r[1]) for r in rows]

    def vector_batches(self) -> Iterator[VectorBatch]:
        """Every stored vector, in id order: what the vector stores are rebuilt from."""
        with self.lock:
            cursor = self._conn.execute("SELECT id, page_id, vector FROM passages ORDER BY id")
        return self._batches(cursor)

    def page_map(self) -> Iterator[tuple[int, int]]:
        """``(passage id, page id)`` of every passage, in id order, without reading a vector."""
        with self.lock:
            # No ORDER BY: unordered, SQLite scans the covering page index instead of every row.
            rows = self._conn.execute("SELECT id, page_id FROM passages").fetchall()
        pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
        pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
        return ((int(i), int(p)) for i, p in pairs.tolist())

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it moves the generation only when it changed a row."""
        if self.read_only:
            raise PermissionError(f"index {self.name!r} was opened read-only")
        with self.lock, self._conn:
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

    def upsert_page(
        self, page: PageRecord, passages: Sequence[PassageRecord], vectors: Vectors
    ) -> tuple[int, list[int], list[int]]:
        """Store a page and its passages in one transaction; ``(page id, old passage ids, new passage ids)``."""
        row = _page_row(page)
        with self.transaction() as conn:
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
        return page_id, old_ids, new_ids

    def remove_page(self, url: str) -> list[int] | None:
        """Delete one page and the aliases of it; the ids of its passages, None when it was not stored."""
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM pages WHERE url=?", (url,)).fetchone()
            if row is None:
                return None
            ids = self._delete_page_rows(conn, row[0])
            conn.execute("DELETE FROM aliases WHERE page_url=?", (url,))
        return ids

    def remove_pages(self, pattern: str) -> tuple[list[str], list[int]]:
        """Delete the pages ``pattern`` names or matches (see :meth:`PassageIndex.remove_pages`).

        Returns the removed URLs and the ids of their passages.
        """
        with self.transaction() as conn:
            pages = conn.execute("SELECT id, url FROM pages").fetchall()
            alias_urls = [str(r[0]) for r in conn.execute("SELECT url FROM aliases")]
            exact = pattern in alias_urls or any(url == pattern for _, url in pages)

            def matches(url: str) -> bool:
                return url == pattern if exact else fnmatchcase(url, pattern)

            removed = sorted(str(url) for _, url in pages if matches(url))
            ids = [i for page_id, url in pages if matches(url) for i in self._delete_page_rows(conn, page_id)]
            conn.executemany("DELETE FROM aliases WHERE page_url=?", [(url,) for url in removed])
            conn.executemany("DELETE FROM aliases WHERE url=?", [(url,) for url in alias_urls if matches(url)])
        return removed, ids

    def mark_fetched(
        self, url: str, *, status: int, fetched_at: str | None, etag: str | None, last_modified: str | None
    ) -> bool:
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE pages SET status=?, fetched_at=?, etag=coalesce(?, etag),"
                " last_modified=coalesce(?, last_modified), gone=CASE WHEN ? < 400 THEN 0 ELSE gone END"
                " WHERE url=?",
                (status, fetched_at or now(), etag, last_modified, status, url),
            )
        return cursor.rowcount > 0

    def mark_gone(self, url: str, gone: bool) -> bool:
        with self.transaction() as conn:
            row = conn.execute("SELECT gone FROM pages WHERE url=?", (url,)).fetchone()
            if row is None:
                return False
            if bool(row[0]) != gone:  # an unchanged flag is no change: the generation stays
                conn.execute("UPDATE pages SET gone=? WHERE url=?", (int(gone), url))
        return True

    # -- aliases -----------------------------------------------------------------------------

    def add_alias(self, url: str, page_url: str, kind: str) -> None:
        """Record an alias (arguments checked by :meth:`PassageIndex.add_alias`); ValueError on a conflict."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM pages WHERE url=?", (url,)).fetchone():
                raise ValueError(f"{url} is a stored page; remove it before recording it as an alias")
            target = conn.execute("SELECT page_url FROM aliases WHERE url=?", (page_url,)).fetchone()
            if target is not None:
                raise ValueError(f"{page_url} is itself an alias of {target[0]}")
            conn.execute(
                "INSERT INTO aliases (url, page_url, kind, created_at) VALUES (?,?,?,?) ON CONFLICT(url)"
                " DO UPDATE SET page_url=excluded.page_url, kind=excluded.kind, created_at=excluded.created_at",
                (url, page_url, kind, now()),
            )

    def alias_of(self, url: str) -> tuple[str, str] | None:
        if not self.has_aliases:
            return None
        with self.lock:
            row = self._conn.execute("SELECT page_url, kind FROM aliases WHERE url=?", (url,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def aliases(self, page_url: str) -> list[tuple[str, str]]:
        if not self.has_aliases:
            return []
        with self.lock:
            rows = self._conn.execute(
                "SELECT url, kind FROM aliases WHERE page_url=? ORDER BY url", (page_url,)
            ).fetchall()
        return [(str(url), str(kind)) for url, kind in rows]

    # -- lookups that never wait on the lock -------------------------------------------------

    @contextmanager
    def committed(self) -> Iterator[sqlite3.Connection]:
        """A connection for a short lookup of committed rows that never waits on this store's lock.

        A writer's lock is held through each commit and each flush (seconds when the vector index
        is rebuilt): the crawler asks for validators on its event loop and the pipeline checks each
        page it extracts (stored version, duplicates) while a batch is stored, so these lookups go
        through a read-only connection of their own (WAL lets it read while the writer writes).
        """
        if self.read_only:
            with self.lock:
                yield self._conn
            return
        with self._lookup_lock:
            if self._lookup is None:
                self._lookup = connect(self.path / DB_FILE, read_only=True)
            yield self._lookup

    def page_version(self, url: str) -> tuple[str, str] | None:
        with self.committed() as conn:
            row = conn.execute(
                f"SELECT g.content_hash, {self._column['chunking']} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def validators(self, url: str) -> tuple[str | None, str | None] | None:
        with self.committed() as conn:
            row = conn.execute(
                f"SELECT {self._column['etag']}, {self._column['last_modified']} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def page_with_hash(self, content_hash: str, *, exclude_url: str | None) -> str | None:
        with self.committed() as conn:
            row = conn.execute(
                f"SELECT g.url FROM pages g WHERE g.content_hash=? AND g.url IS NOT ? AND {self._column['gone']}=0"  # noqa: S608 # column names only
                " ORDER BY g.id LIMIT 1",
                (content_hash, exclude_url),
            ).fetchone()
        return str(row[0]) if row else None

    def near_duplicate(self, simhash: int, *, max_distance: int, exclude_url: str | None) -> str | None:
        """The closest live page within ``max_distance`` bits, ties to the oldest (scans a covering index)."""
        if self._column["simhash"] == "NULL":
            return None  # an unmigrated store has no SimHashes
        best: tuple[int, int, str] | None = None
        with self.committed() as conn:
            rows = conn.execute("SELECT id, url, simhash FROM pages WHERE simhash IS NOT NULL AND gone=0").fetchall()
        for page_id, url, value in rows:
            distance = hamming_distance(value, simhash)
            if distance <= max_distance and url != exclude_url:
                candidate = (distance, page_id, url)
                best = candidate if best is None else min(best, candidate)
        return best[2] if best else None

    # -- reading -----------------------------------------------------------------------------

    def page_count(self) -> int:
        with self.lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])

    def passage_count(self) -> int:
        with self.lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0])

    def hits(self, found: Sequence[tuple[int, float]]) -> list[SearchHit]:
        """The passages of ``(passage id, score)`` pairs, in that order; ids no longer stored are skipped."""
        if not found:
            return []
        marks = ",".join("?" * len(found))  # only placeholders are interpolated into the SQL
        query = self._hits_query.replace("{marks}", marks)
        with self.lock:
            rows = self._conn.execute(query, [i for i, _ in found]).fetchall()
        by_id = {row[0]: row for row in rows}
        hits = []
        for passage_id, score in found:
            row = by_id.get(passage_id)
            if row is None:
                continue
            metadata = {
                name: _metadata_value(name, value) for name, value in zip(_METADATA_FIELDS, row[8:-1], strict=True)
            }
            if row[-1] is not None:
                metadata[PDF_PAGE_KEY] = str(row[-1])
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
                    metadata=metadata,
                )
            )
        return hits

    def page(self, url: str) -> PageRecord | None:
        columns = ", ".join(self._column[name] for name in PAGE_FIELDS)
        with self.lock:
            row = self._conn.execute(
                f"SELECT {columns} FROM pages g WHERE g.url=?",  # noqa: S608 # column names only
                (url,),
            ).fetchone()
        if row is None:
            return None
        values = dict(zip(PAGE_FIELDS, row, strict=True))
        if values["simhash"] is not None:
            values["simhash"] = simhash_from_sql(values["simhash"])
        values["gone"] = bool(values["gone"])
        return PageRecord(**values)

    def unmentioned(self, terms: Sequence[str]) -> list[str]:
        missing = []
        with self.lock:
            for term in dict.fromkeys(t.lower() for t in terms if t):
                row = self._conn.execute(
                    "SELECT 1 FROM passages WHERE instr(lower(text), ?) > 0 LIMIT 1", (term,)
                ).fetchone()
                if row is None:
                    missing.append(term)
        return missing

    def page_urls(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self._conn.execute("SELECT url FROM pages ORDER BY id")]

    def problems(self) -> list[str]:
        """What in the store disagrees with itself: duplicated or orphaned passages, broken aliases."""
        checks = list(_PASSAGE_CHECKS) + (list(_ALIAS_CHECKS) if self.has_aliases else [])
        problems = []
        with self.lock:
            for count_sql, what in checks:
                count = self._conn.execute(count_sql).fetchone()[0]
                if count:
                    problems.append(f"{count} {what}")
        return problems


_PASSAGE_CHECKS = (
    (
        'SELECT COUNT(*) FROM (SELECT page_id, start, "end" FROM passages GROUP BY page_id, start, "end"'
        " HAVING COUNT(*) > 1)",
        "duplicated passages",
    ),
    ("SELECT COUNT(*) FROM passages WHERE page_id NOT IN (SELECT id FROM pages)", "passages without a page"),
)
_ALIAS_CHECKS = (
    (
        "SELECT COUNT(*) FROM aliases WHERE page_url NOT IN (SELECT url FROM pages)",
        "aliases of pages that are not stored",
    ),
    ("SELECT COUNT(*) FROM aliases WHERE url IN (SELECT url FROM pages)", "aliases whose URL is also a stored page"),
)
"""(a query counting one kind of disagreement, what the count is of); aliases only where the table exists."""
