"""A killed ingest never corrupts the index nor loses finished pages (real CLI, real pages)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from indexes import PassageIndex
from tests.conftest import BIN, StaticServer, citeline_env, run_citeline

pytestmark = pytest.mark.e2e


def stored_pages(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_ingest_then_rerun(python_docs: StaticServer, tmp_path: Path) -> None:
    env = citeline_env(tmp_path)
    args = ["ingest", python_docs.base_url + "library/index.html", "--max-pages", "40", "--index", "crash"]
    process = subprocess.Popen([str(BIN / "citeline"), *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    db = tmp_path / "indexes" / "crash" / "passages.sqlite"
    deadline = time.monotonic() + 300
    while stored_pages(db) < 3:
        assert process.poll() is None, "ingest ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()

    index = PassageIndex.open(tmp_path, "crash")
    survived = index.manifest().pages
    assert survived >= 3
    assert index.check_integrity() == []
    assert index.vector_count == index.manifest().passages
    index.close()

    completed = run_citeline([*args, "--summary-json", str(tmp_path / "summary.json")], env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pages_unchanged"] >= survived, "pages finished before the kill are not re-embedded"
    index = PassageIndex.open(tmp_path, "crash")
    assert index.check_integrity() == []
    assert index.manifest().pages == summary["index_pages"] == summary["pages_indexed"] + summary["pages_unchanged"]
