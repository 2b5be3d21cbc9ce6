"""The ``citeline`` commands in process (typer's runner, hash embedder): what they leave open when they fail."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citeline.indexes import HashEmbedder, PassageIndex
from citeline.indexes._layout import DB_FILE
from citeline.service.cli import app
from tests.leaks import open_descriptors


def test_index_list_closes_an_index_it_cannot_describe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that opens but lost a table fails in ``manifest()``, after the index was opened."""
    monkeypatch.setenv("CITELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CITELINE_CONFIG", "/nonexistent")
    PassageIndex.create_or_open(tmp_path, "docs", embedding_model=HashEmbedder(32).model_name, dimension=32).close()
    db = tmp_path / "indexes" / "docs" / DB_FILE
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE pages")
    conn.close()
    # The runner keeps the exception, traceback and frames alive: they must not be what holds the store.
    result = CliRunner().invoke(app, ["index", "list"])
    assert isinstance(result.exception, sqlite3.OperationalError), result.output
    assert open_descriptors(db) == 0


BODY = "<p>{0} is described here in enough words to pass the extractor's minimum length check.</p>"


def test_ingest_summary_says_what_a_page_cap_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citeline import indexes

    site = tmp_path / "site"
    site.mkdir()
    for n in range(4):
        (site / f"page{n}.html").write_text(f"<html><body>{BODY.format(f'Topic {n}')}</body></html>")
    monkeypatch.setenv("CITELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CITELINE_CONFIG", "/nonexistent")
    monkeypatch.setenv("CITELINE_MAX_PAGES", "2")  # the crawl default: it must not cap a directory
    monkeypatch.setattr(indexes, "load_embedder", lambda *_a, **_k: HashEmbedder(32))
    runner = CliRunner()
    whole = tmp_path / "whole.json"
    common = ["ingest", "--dir", str(site), "--base-url", "https://docs.example/", "--no-resume"]
    result = runner.invoke(app, [*common, "--index", "whole", "--summary-json", str(whole)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(whole.read_text())
    assert (summary["pages_new"], summary["page_cap"], summary["left_by_cap"]) == (4, None, {})
    capped = tmp_path / "capped.json"
    result = runner.invoke(
        app, [*common, "--index", "capped", "--max-pages", "3", "--summary-json", str(capped)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "REACHED at 3 pages; left out: files 1" in " ".join(result.output.split())
    assert json.loads(capped.read_text())["left_by_cap"] == {"files": 1}
