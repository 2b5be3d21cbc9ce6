"""An index with its vectors in (embedded) Qdrant, end to end: real pages ingested by the CLI with the
real embedder, then searched and answered over HTTP by ``citeline serve`` with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import StaticServer, citeline_env, live_service, run_citeline

pytestmark = pytest.mark.e2e


def test_qdrant_backed_index_is_ingested_searched_and_answered_from(python_docs: StaticServer, tmp_path: Path) -> None:
    qdrant = {"CITELINE_VECTOR_BACKEND": "qdrant"}
    env = citeline_env(tmp_path, **qdrant)
    pages = [f"{python_docs.base_url}library/json.html", f"{python_docs.base_url}library/csv.html"]
    ingest = run_citeline(["ingest", *pages, "--max-depth", "0", "--index", "vq"], env)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    manifest = json.loads((tmp_path / "indexes" / "vq" / "manifest.json").read_text())
    assert manifest["vector_backend"] == "qdrant"
    assert (tmp_path / "indexes" / "vq" / "qdrant").is_dir()
    assert not (tmp_path / "indexes" / "vq" / "vectors.faiss").exists()

    search = run_citeline(["search", "write rows to a CSV file", "--index", "vq", "-k", "3"], env)
    assert search.returncode == 0, search.stderr[-2000:]
    assert "library/csv.html" in search.stdout.split("\n")[1]

    with live_service(tmp_path, "vq", **qdrant) as service:
        body = service.ask("How do I parse a JSON string into a Python object?")
    assert body["abstained"] is False, body
    assert body["citations"], body
    assert all(c["url"].endswith("library/json.html") for c in body["citations"]), body["citations"]
