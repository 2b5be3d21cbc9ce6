"""The SQLite schema of ``passages.sqlite``, its in-place migrations, and opening a connection.

Schema changes are additive and migrated in place by every writer: every writable open runs
:func:`ensure_schema`, which creates missing tables and adds missing ``pages`` columns with
``ALTER TABLE``. ``tests/data/indexes/`` keeps indexes written by each earlier schema version;
every command is tested against them. A reader never writes, so it reads a store that no writer
has migrated yet with the missing columns taken as their defaults (:data:`UNMIGRATED_VALUE`).

The index's Qdrant collection name is minted here too, once, by the first writer, and kept in the
``meta`` table: the index name plus a random id, so indexes of the same name in two data
directories (or a copy of one) never share a collection on one server. An index that already used
Qdrant before names were unique keeps its collection (named after the index alone).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path

from citeline.indexes._manifest import FORMAT_VERSION, read_manifest

COLLECTION_KEY = "qdrant_collection"
"""``meta`` key of the index's Qdrant collection name."""
COLLECTION_HOME_KEY = "qdrant_collection_home"
"""``meta`` key of the folder the collection name was minted for: a copied index gets its own."""

SCHEMA = """
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

ADDED_PAGE_COLUMNS: dict[str, str] = {
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

UNMIGRATED_VALUE = {"chunking": "''", "gone": "0"}
"""What a reader selects for an added column the store lacks: the column's default (else NULL)."""


def connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
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


def page_columns(conn: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in conn.execute("PRAGMA table_info(pages)")}


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return row is not None


def _migrate(conn: sqlite3.Connection) -> list[str]:
    """Bring a store written by an older version to the current schema; return the added columns.

    Runs inside the caller's write transaction, so two writers opening an old store at once
    cannot both add a column, and a failure leaves the store as it was.
    """
    present = page_columns(conn)
    added = [name for name in ADDED_PAGE_COLUMNS if name not in present]
    for name in added:
        # Names and declarations come from the constant above, never from input.
        conn.execute(f"ALTER TABLE pages ADD COLUMN {name} {ADDED_PAGE_COLUMNS[name]}")
    for statement in _MIGRATED_INDEXES:
        conn.execute(statement)
    return added


def new_collection_name(index_name: str) -> str:
    """A Qdrant collection name no other index has: the index name (for people) and a random id."""
    return f"{index_name}-{uuid.uuid4().hex}"


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
    legacy = COLLECTION_KEY not in meta and read_manifest(path).get("vector_backend") == "qdrant"
    name = path.name if legacy else new_collection_name(path.name)
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [(COLLECTION_KEY, name), (COLLECTION_HOME_KEY, home)],
    )
    return COLLECTION_KEY in meta


def ensure_schema(conn: sqlite3.Connection, path: Path, meta: Mapping[str, str] | None = None) -> None:
    """Bring a store opened for writing to the current schema, and fill in missing ``meta`` rows.

    Every writable open runs it, so no writer ever meets a store older than its code (an index
    written before the ``aliases`` table, say). ``meta`` (the embedder of a new index) is only
    recorded where the store has none.
    """
    conn.executescript(SCHEMA)  # only IF NOT EXISTS statements: safe to repeat and to race
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn)
        defaults = {**(meta or {}), "generation": "0", "format_version": str(FORMAT_VERSION)}
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", list(defaults.items()))
        if _claim_collection(conn, path):
            # Readers of the old folder's name must reopen: moving the generation makes them.
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
