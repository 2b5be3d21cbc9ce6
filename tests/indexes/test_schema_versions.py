"""Indexes written by every earlier schema version open, migrate and work with every command.

``tests/data/indexes/`` holds one tiny index per schema version, each written by the commit its
README names with that commit's own code and the hash embedder (32-d); each test works on a copy.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citeline import indexes
from citeline.indexes import FaissVectorStore, HashEmbedder, PageRecord, PassageIndex, PassageRecord, VectorBackend
from citeline.indexes._layout import DB_FILE
from citeline.indexes._schema import ADDED_PAGE_COLUMNS, COLLECTION_KEY
from citeline.ingest import IngestInputs, IngestSettings, run_ingest
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.cli import app
from citeline.service.generation import ChatMessage, ScriptedGenerator
from citeline.service.operations import IndexRegistry
from citeline.service.settings import ServiceSettings
from tests.conftest import citeline_env, run_citeline

FIXTURES = Path(__file__).parent.parent / "data" / "indexes"
EMBEDDER = HashEmbedder(32)
JSON_URL = "https://docs.example/json.html"
CSV_URL = "https://docs.example/csv.html"
ZLIB_URL = "https://docs.example/old/zlib.html"
VERSIONS: list[tuple[str, VectorBackend]] = [
    ("schema1-pages", "faiss"),  # pages without chunking, no aliases table
    ("schema2-chunking", "faiss"),  # pages with chunking, no aliases table
    ("schema3-qdrant", "qdrant"),  # current tables, vectors in an embedded collection named "docs"
    ("schema4-faiss", "faiss"),  # current tables, vectors.faiss without a page map (before FaissVectorStore)
]


@pytest.fixture(params=VERSIONS, ids=[name for name, _ in VERSIONS])
def old_index(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, VectorBackend]:
    """A copy of one fixture's data directory, and the vector backend it was written with."""
    name, backend = request.param
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURES / name, data_dir)
    return data_dir, backend


def columns_and_tables(data_dir: Path) -> tuple[set[str], set[str]]:
    conn = sqlite3.connect(data_dir / "indexes" / "docs" / DB_FILE)
    try:
        columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(pages)")}
        tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    return columns, tables


def test_fixtures_are_what_their_versions_wrote() -> None:
    """The fixtures really are old: without this, every test below could pass on current stores."""
    schema1, tables1 = columns_and_tables(FIXTURES / "schema1-pages")
    schema2, tables2 = columns_and_tables(FIXTURES / "schema2-chunking")
    schema3, tables3 = columns_and_tables(FIXTURES / "schema3-qdrant")
    assert not schema1 & set(ADDED_PAGE_COLUMNS)
    assert schema2 & set(ADDED_PAGE_COLUMNS) == {"chunking"}
    assert schema3 >= set(ADDED_PAGE_COLUMNS)
    assert "aliases" not in tables1 | tables2
    assert "aliases" in tables3
    manifest = json.loads((FIXTURES / "schema3-qdrant" / "indexes" / "docs" / "manifest.json").read_text())
    assert manifest["vector_backend"] == "qdrant"
    schema4, tables4 = columns_and_tables(FIXTURES / "schema4-faiss")
    assert schema4 >= set(ADDED_PAGE_COLUMNS)
    assert "aliases" in tables4
    docs4 = FIXTURES / "schema4-faiss" / "indexes" / "docs"
    assert sorted(p.name for p in docs4.iterdir()) == ["manifest.json", "passages.sqlite", "vectors.faiss"]


def test_a_writable_open_migrates_before_it_writes(old_index: tuple[Path, VectorBackend]) -> None:
    data_dir, backend = old_index
    index = PassageIndex.open(data_dir, "docs", read_only=False, vector_backend=backend)
    try:
        assert index.remove_pages("https://docs.example/old/*") == [ZLIB_URL]
        index.add_alias("https://docs.example/json", JSON_URL, "redirect")
        assert index.alias_of("https://docs.example/json") == (JSON_URL, "redirect")
        assert index.check_integrity() == []
        index.flush()
    finally:
        index.close()
    columns, tables = columns_and_tables(data_dir)
    assert columns >= set(ADDED_PAGE_COLUMNS)
    assert "aliases" in tables
    reader = PassageIndex.open(data_dir, "docs", vector_backend=backend)
    try:
        assert sorted(reader.page_urls()) == [CSV_URL, JSON_URL]
        hits = reader.search(EMBEDDER.embed(["json.load reads a document from a file"]), k=1)
        assert hits[0].url == JSON_URL
        page = reader.page(JSON_URL)
        assert page is not None
        assert not page.gone
    finally:
        reader.close()


def test_an_old_qdrant_index_keeps_its_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrating the collection name must not cost a rebuild: the index already uses ``docs``."""
    shutil.copytree(FIXTURES / "schema3-qdrant", tmp_path / "data")

    def no_rebuild(*_args: object) -> None:
        raise AssertionError("the collection was rebuilt")

    monkeypatch.setattr(PassageIndex, "_rebuild_qdrant", no_rebuild)
    index = PassageIndex.open(tmp_path / "data", "docs", read_only=False, vector_backend="qdrant")
    try:
        assert index.vector_count == 6
        assert index.search(EMBEDDER.embed(["zlib.compress shrinks bytes"]), k=1)[0].url == ZLIB_URL
    finally:
        index.close()
    conn = sqlite3.connect(tmp_path / "data" / "indexes" / "docs" / DB_FILE)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key=?", (COLLECTION_KEY,)).fetchone() == ("docs",)
    finally:
        conn.close()


SCHEMA4_HITS = {
    # What the code that wrote schema4-faiss (3d21763) returned for these queries, k=6: (passage id, score).
    "json.load reads a document from a file": [
        (1, 1.0),
        (2, 0.474342),
        (3, 0.239046),
        (6, 0.0),
        (5, 0.0),
        (4, -0.193649),
    ],
    "csv.writer writes rows to a file": [
        (3, 1.0),
        (5, 0.327327),
        (1, 0.239046),
        (4, 0.231455),
        (2, 0.188982),
        (6, -0.283473),
    ],
    "zlib.compress shrinks bytes": [(5, 1.0), (3, 0.327327), (2, 0.288675), (6, 0.0), (4, 0.0), (1, 0.0)],
    "rows": [(4, 0.408248), (3, 0.377964), (1, 0.158114), (2, 0.0), (6, -0.25), (5, -0.288675)],
}


def test_the_faiss_format_before_faiss_vector_store_opens_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index FAISS-backed before PassageIndex went through FaissVectorStore: its saved vectors.faiss
    is served as it is (no rebuild), with the same results, and the index keeps working after an upsert."""
    shutil.copytree(FIXTURES / "schema4-faiss", tmp_path / "data")
    data_dir = tmp_path / "data"

    def no_rebuild(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the saved FAISS file was not used")

    with monkeypatch.context() as patch:
        patch.setattr(FaissVectorStore, "rebuild", no_rebuild)
        reader = PassageIndex.open(data_dir, "docs")
    try:
        for text, expected in SCHEMA4_HITS.items():
            found = [(h.passage_id, h.score) for h in reader.search(EMBEDDER.embed([text]), k=6)]
            assert found == [(i, pytest.approx(s, abs=1e-5)) for i, s in expected]
        assert reader.check_integrity() == []
    finally:
        reader.close()
    writer = PassageIndex.open(data_dir, "docs", read_only=False)
    try:
        text = "gzip.open opens a compressed file\ngzip.compress shrinks bytes too"
        lines = text.split("\n")
        passages = [PassageRecord(start=0, end=len(lines[0]), text=lines[0])]
        passages.append(PassageRecord(start=len(lines[0]) + 1, end=len(text), text=lines[1]))
        page = PageRecord(url="https://docs.example/gzip.html", title="gzip", text=text, content_hash="hash-gzip")
        assert writer.upsert_page(page, passages, EMBEDDER.embed(lines)).passages == 2
        writer.remove_page(CSV_URL)
        writer.flush()
        assert writer.check_integrity() == []
    finally:
        writer.close()
    with monkeypatch.context() as patch:
        patch.setattr(FaissVectorStore, "rebuild", no_rebuild)
        reader = PassageIndex.open(data_dir, "docs")
    try:
        assert reader.vector_count == 6
        assert reader.search(EMBEDDER.embed(["gzip.open opens a compressed file"]), k=1)[0].url.endswith("gzip.html")
        assert CSV_URL not in {h.url for h in reader.search(EMBEDDER.embed(["csv.writer writes rows to a file"]), k=6)}
        json_hits = reader.search(EMBEDDER.embed(["json.load reads a document from a file"]), k=2)
        assert [(h.passage_id, h.score) for h in json_hits] == [(1, pytest.approx(1.0)), (2, pytest.approx(0.474342))]
        assert reader.check_integrity() == []
    finally:
        reader.close()


@pytest.fixture
def cli_env(old_index: tuple[Path, VectorBackend], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the CLI pointing at the old index; the hash embedder and a scripted generator
    stand in for the real models (which could not search vectors the hash embedder made)."""
    data_dir, backend = old_index
    for key, value in {
        "CITELINE_DATA_DIR": str(data_dir),
        "CITELINE_CONFIG": "/nonexistent",
        "CITELINE_INDEX": "docs",
        "CITELINE_VECTOR_BACKEND": backend,
        "HF_HUB_OFFLINE": "1",  # `ask` sets it; monkeypatch puts it back afterwards
    }.items():
        monkeypatch.setenv(key, value)

    def reply(messages: Sequence[ChatMessage]) -> str:
        if messages[0].content == JUDGE_SYSTEM:
            return "yes"
        for block in re.split(r"\n(?=\[\d+\] )", messages[-1].content):
            if "json.load reads" in block and (label := re.match(r"\[(\d+)\] ", block)):
                return f"json.load reads a document from a file [{label.group(1)}]."
        return "No source says."

    monkeypatch.setattr(indexes, "load_embedder", lambda *_a, **_k: EMBEDDER)
    monkeypatch.setattr(ServiceSettings, "generator", lambda _self: ScriptedGenerator(reply))
    return data_dir


def test_every_command_opens_migrates_and_uses_an_old_index(cli_env: Path, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # Readers first: they read the unmigrated store as it is.
    assert "docs" in run("index", "list")
    assert JSON_URL in run("search", "json.load reads a document from a file")
    answer = json.loads(run("ask", "--json", "How does json.load read a document?"))
    assert [c["url"] for c in answer["citations"]] == [JSON_URL]
    # The writers migrate, then write: a page removed, then one added by an ingest.
    assert ZLIB_URL in run("index", "remove", "https://docs.example/old/*")
    assert "docs" in run("index", "list")
    assert ZLIB_URL not in run("search", "zlib.compress shrinks bytes")
    site = tmp_path / "site"
    site.mkdir()
    (site / "gzip.html").write_text(
        "<html><head><title>gzip</title></head><body><h1>gzip</h1><p>gzip.open opens a compressed file"
        " in binary or text mode, described here in enough words for the extractor.</p></body></html>"
    )
    run("ingest", "--dir", str(site), "--base-url", "https://docs.example/")
    assert "https://docs.example/gzip.html" in run("search", "gzip.open opens a compressed file")
    columns, tables = columns_and_tables(cli_env)
    assert columns >= set(ADDED_PAGE_COLUMNS)
    assert "aliases" in tables


async def test_reingest_into_an_old_index(old_index: tuple[Path, VectorBackend], tmp_path: Path) -> None:
    data_dir, backend = old_index
    site = tmp_path / "site"
    site.mkdir()
    body = "<p>{0} is described here in enough words to pass the extractor's minimum length check.</p>"
    (site / "json.html").write_text(
        "<html><head><title>JSON</title></head><body><h1>JSON</h1>"
        + body.format("json.loads parses a string, and json.load reads a document from a file")
        + "</body></html>"
    )
    (site / "json2.html").write_text(  # the same text again (walked after): an alias, in a table v1 lacked
        (site / "json.html").read_text()
    )
    summary = await run_ingest(
        settings=IngestSettings(data_dir=data_dir, index="docs", vector_backend=backend),
        embedder=EMBEDDER,
        inputs=IngestInputs(directory=site, base_url="https://docs.example/"),
    )
    assert summary.pages_indexed == 1
    assert summary.duplicates == 1
    index = PassageIndex.open(data_dir, "docs", vector_backend=backend)
    try:
        assert sorted(index.page_urls()) == [CSV_URL, JSON_URL, ZLIB_URL]
        page = index.page(JSON_URL)
        assert page is not None
        assert "json.loads parses a string" in page.text
        assert page.chunking  # written by the current chunker, in a column v1 lacked
        assert index.alias_of("https://docs.example/json2.html") == (JSON_URL, "exact")
        assert index.check_integrity() == []
    finally:
        index.close()


def test_the_citeline_command_removes_pages_from_an_old_index(old_index: tuple[Path, VectorBackend]) -> None:
    """The reported failure, as reported: the installed ``citeline index remove`` on an index
    written before the aliases table (it loads no model, so this runs the real command)."""
    data_dir, backend = old_index
    env = citeline_env(data_dir, CITELINE_INDEX="docs", CITELINE_VECTOR_BACKEND=backend)
    removed = run_citeline(["index", "remove", ZLIB_URL], env, timeout=120)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.split() == [ZLIB_URL]
    assert "index now 2 pages, 4 passages" in removed.stderr
    listed = run_citeline(["index", "list"], env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "docs" in listed.stdout


def test_the_service_registry_serves_an_old_index_before_and_after_a_writer_migrates_it(
    old_index: tuple[Path, VectorBackend],
) -> None:
    data_dir, backend = old_index
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension, vector_backend=backend)
    query = EMBEDDER.embed(["zlib.compress shrinks bytes"])
    try:
        assert registry.names() == ["docs"]
        with registry.lease("docs") as index:
            hits = index.search(query, k=1)
            assert hits[0].url == ZLIB_URL
            assert hits[0].metadata["gone"] == "false"
        if backend == "qdrant":
            registry.close()  # embedded Qdrant: one process-wide client per folder, and the writer needs it
        writer = PassageIndex.open(data_dir, "docs", read_only=False, vector_backend=backend)
        try:
            writer.remove_page(ZLIB_URL)
            writer.flush()
        finally:
            writer.close()
        if backend == "qdrant":
            registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension, vector_backend=backend)
        with registry.lease("docs") as index:
            assert ZLIB_URL not in {h.url for h in index.search(query, k=6)}
            assert index.search(EMBEDDER.embed(["csv.writer writes rows to a file"]), k=1)[0].url == CSV_URL
    finally:
        registry.close()
