"""The checkpoint of a crawl job: its frontier and which URLs are finished, in SQLite.

A job is identified by what the command asked for (index, seeds, scope, limits), so running the
same command after a crash or ``kill -9`` resumes that job: finished URLs are not fetched again,
queued ones are fetched first, and the page budget counts both. The index itself needs no repair
after a kill (every page is one transaction there); the journal only saves the work.

Order of writes, which is what makes a kill at any moment safe:

1. links found on a page are journalled as ``queued`` before the page is handed on;
2. the page is stored in the index (one transaction);
3. the URL is journalled as ``done``.

A kill between 2 and 3 leaves a page stored but not journalled as done; on resume, a queued URL
whose page the index stored after the job started counts as done (see ``IngestPipeline.run``),
so no finished page is fetched again, and none is ever stored twice. A job that ends normally deletes its rows.

The same file keeps each fetched page's links across runs (``outlinks``): a page that answers
``304 Not Modified`` has no body to find links in, and the crawl must still reach what it links to.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_FILE = "crawl_journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, spec TEXT NOT NULL, started_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outlinks (url TEXT PRIMARY KEY, links TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frontier (
    job TEXT NOT NULL,
    url TEXT NOT NULL,
    depth INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, url)
);
"""


def job_key(spec: dict[str, Any]) -> str:
    """A stable id for what a command asked for: same command, same job."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class JobState:
    resumed: bool
    """True when an unfinished run of the same job left a checkpoint."""
    done: list[str]
    queued: list[tuple[str, int]]
    started_at: str = ""
    """When the job first started (UTC, ISO 8601, seconds)."""


class CrawlJournal:
    """One job's checkpoint in ``<index dir>/crawl_journal.sqlite``; safe to call from threads."""

    def __init__(self, index_path: Path, spec: dict[str, Any]) -> None:
        self.key = job_key(spec)
        self._conn = sqlite3.connect(index_path / JOURNAL_FILE, check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a row the crawl relied on must survive power loss as well as a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except BaseException:
            # No caller gets an object to close: a corrupt journal must not keep its file open.
            self._conn.close()
            raise
        self._lock = threading.Lock()
        self._spec = json.dumps(spec, sort_keys=True)

    def open(self) -> JobState:
        """Start the job, or pick up where an interrupted run of it stopped."""
        with self._lock:
            row = self._conn.execute("SELECT started_at FROM jobs WHERE key=?", (self.key,)).fetchone()
            if row is None:
                started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._conn.execute("INSERT INTO jobs VALUES (?,?,?)", (self.key, self._spec, started_at))
                return JobState(False, [], [], started_at)
            rows = self._conn.execute(
                "SELECT url, depth, done FROM frontier WHERE job=? ORDER BY rowid", (self.key,)
            ).fetchall()
        return JobState(
            True,
            [str(url) for url, _, done in rows if done],
            [(str(url), int(depth)) for url, depth, done in rows if not done],
            str(row[0]),
        )

    def queue(self, items: Sequence[tuple[str, int]]) -> None:
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR IGNORE INTO frontier (job, url, depth) VALUES (?,?,?)",
                [(self.key, url, depth) for url, depth in items],
            )

    def finish_urls(self, urls: Iterable[str]) -> None:
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "UPDATE frontier SET done=1 WHERE job=? AND url=?", [(self.key, url) for url in urls]
            )

    def links(self, url: str) -> list[str] | None:
        """The links ``url`` had when last fetched, or None when it never was."""
        with self._lock:
            row = self._conn.execute("SELECT links FROM outlinks WHERE url=?", (url,)).fetchone()
        return list(json.loads(row[0])) if row else None

    def save_links(self, url: str, links: Sequence[str]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO outlinks VALUES (?,?)", (url, json.dumps(list(links))))

    def complete(self) -> None:
        """The job ran to its end: forget it, so the next run starts fresh (with conditional GETs)."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM frontier WHERE job=?", (self.key,))
            self._conn.execute("DELETE FROM jobs WHERE key=?", (self.key,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
