"""The ``citeline`` commands in process (typer's runner, hash embedder): what they leave open when they fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexes import HashEmbedder, PassageIndex
from indexes._store import DB_FILE
from service.cli import app
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
