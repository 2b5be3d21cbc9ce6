"""A killed ingest never corrupts the index nor loses finished pages, and the same command resumes
the job without refetching what was finished (real CLI, real pages, real embedder, kill -9)."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from citeline.indexes import PassageIndex
from tests.conftest import BIN, StaticServer, citeline_env, run_citeline

pytestmark = pytest.mark.e2e

KILLS = 3


def stored_pages(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def check_index(data_dir: Path) -> int:
    """Vectors = passage rows, no duplicated passage, every page whole (its passages tile its text)."""
    index = PassageIndex.open(data_dir, "crash")
    try:
        assert index.check_integrity() == []
        assert index.vector_count == index.manifest().passages
        with sqlite3.connect(f"file:{index.path / 'passages.sqlite'}?mode=ro", uri=True) as conn:
            empty = conn.execute("SELECT COUNT(*) FROM pages WHERE id NOT IN (SELECT page_id FROM passages)")
            assert empty.fetchone()[0] == 0, "a page without its passages: half-written"
        return index.manifest().pages
    finally:
        index.close()


def fetched_paths(server: StaticServer, since: int) -> list[str]:
    return [r.split(" ")[1] for r in server.requests[since:] if r.startswith("GET ") and " 200" in r]


def test_kill_9_repeatedly_then_resume(python_docs: StaticServer, tmp_path: Path) -> None:
    env = citeline_env(tmp_path, CITELINE_EMBED_BATCH_PASSAGES="16")
    args = ["ingest", python_docs.base_url + "library/index.html", "--max-pages", "60", "--index", "crash"]
    db = tmp_path / "indexes" / "crash" / "passages.sqlite"
    rng = random.Random(20261129)
    kills: list[dict[str, int]] = []
    finished_before_last_kill: set[str] = set()
    for kill in range(KILLS):
        before = stored_pages(db)
        log = tmp_path / f"run{kill}.stderr"
        with log.open("wb") as stderr:  # a crash's fatal-error report, for the assertion below
            process = subprocess.Popen([str(BIN / "citeline"), *args], env=dict(env, PYTHONFAULTHANDLER="1"),
                                       stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        target = before + rng.randint(1, 8)
        deadline = time.monotonic() + 300
        while stored_pages(db) < target:
            assert process.poll() is None, f"ingest ended before kill {kill + 1}: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline
            time.sleep(rng.uniform(0.05, 0.3))
        time.sleep(rng.uniform(0, 1.5))  # land anywhere: mid-fetch, mid-embed, mid-transaction
        process.send_signal(signal.SIGKILL)
        process.wait()
        pages = check_index(tmp_path)
        assert pages >= before, "a kill never loses pages stored by an earlier run"
        kills.append({"stored_before": before, "stored_after_kill": pages})
        index = PassageIndex.open(tmp_path, "crash")
        finished_before_last_kill = set(index.page_urls())
        index.close()

    since = len(python_docs.requests)
    completed = run_citeline([*args, "--summary-json", str(tmp_path / "summary.json")], env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["resumed"] is True
    assert summary["resumed_done"] >= kills[-1]["stored_after_kill"]
    refetched = {python_docs.base_url.rstrip("/") + p for p in fetched_paths(python_docs, since)}
    assert not refetched & finished_before_last_kill, "pages finished before the kill are not fetched again"
    pages = check_index(tmp_path)
    assert pages == summary["index_pages"]
    assert pages >= 40, "the resumed job goes on to the end of the crawl"
    print(json.dumps({"kills": kills, "final_pages": pages, "resume_refetched": len(refetched)}))

    again = run_citeline([*args, "--summary-json", str(tmp_path / "again.json")], env)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((tmp_path / "again.json").read_text())
    assert rerun["resumed"] is False
    assert rerun["pages_new"] == rerun["pages_updated"] == 0
    assert rerun["pages_not_modified"] >= pages - 1, "an unchanged site costs 304s on the re-crawl"
