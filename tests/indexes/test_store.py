from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from citeline.indexes import (
    EmbedderMismatchError,
    HashEmbedder,
    IndexNotFoundError,
    InvalidIndexNameError,
    PageRecord,
    PassageIndex,
    PassageRecord,
    list_indexes,
)
from tests.leaks import open_descriptors

EMBEDDER = HashEmbedder(32)


def page(url: str, text: str) -> tuple[PageRecord, list[PassageRecord]]:
    record = PageRecord(url=url, title=f"title of {url}", text=text, content_hash=str(hash(text)))
    passages = []
    start = 0
    for line in text.split("\n"):
        passages.append(PassageRecord(start=start, end=start + len(line), text=line))
        start += len(line) + 1
    return record, passages


def store(index: PassageIndex, url: str, text: str) -> None:
    record, passages = page(url, text)
    index.upsert_page(record, passages, EMBEDDER.embed([p.text for p in passages]))


def new_index(tmp_path: Path, name: str = "docs") -> PassageIndex:
    return PassageIndex.create_or_open(
        tmp_path, name, embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )


def test_search_returns_passages_with_page_provenance(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://a.example/json", "json.load reads a file\njson.dumps writes a string")
    store(index, "https://a.example/csv", "csv.writer writes rows\ncsv.reader reads rows")
    hits = index.search(EMBEDDER.embed(["json.load reads a file"])[0], k=2)
    assert hits[0].url == "https://a.example/json"
    assert hits[0].text == "json.load reads a file"
    assert (hits[0].start, hits[0].end) == (0, len("json.load reads a file"))
    assert hits[0].score > hits[1].score


def test_reingesting_a_url_replaces_its_passages(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://a.example/p", "one\ntwo\nthree")
    store(index, "https://a.example/p", "one\ntwo\nthree")
    store(index, "https://a.example/p", "four\nfive")
    manifest = index.flush()
    assert (manifest.pages, manifest.passages) == (1, 2)
    assert index.vector_count == 2
    assert index.check_integrity() == []


def test_passage_must_match_page_text(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    record = PageRecord(url="https://a.example/p", title="t", text="hello world")
    with pytest.raises(ValueError, match="does not match"):
        index.upsert_page(record, [PassageRecord(0, 5, "HELLO")], EMBEDDER.embed(["HELLO"]))


def test_manifest_names_embedder_and_reopen_uses_saved_faiss(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://a.example/p", "alpha\nbeta")
    index.flush()
    index.close()
    manifest = json.loads((tmp_path / "indexes" / "docs" / "manifest.json").read_text())
    assert manifest["embedding_model"] == EMBEDDER.model_name
    assert manifest["dimension"] == EMBEDDER.dimension
    assert manifest["passages"] == 2
    reopened = PassageIndex.open(tmp_path, "docs")
    assert reopened.vector_count == 2
    assert list_indexes(tmp_path) == ["docs"]


def test_stale_or_corrupt_faiss_file_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    """A crash between the store commit and the FAISS write must not lose or invent vectors."""
    index = new_index(tmp_path)
    store(index, "https://a.example/p", "alpha\nbeta")
    index.flush()
    store(index, "https://a.example/q", "gamma\ndelta\nepsilon")  # committed, never flushed
    index.close()
    reopened = PassageIndex.open(tmp_path, "docs")
    assert reopened.vector_count == 5
    assert reopened.check_integrity() == []
    reopened.close()
    (tmp_path / "indexes" / "docs" / "vectors.faiss").write_bytes(b"garbage")
    again = PassageIndex.open(tmp_path, "docs")
    assert again.vector_count == 5
    hits = again.search(EMBEDDER.embed(["gamma"])[0], k=1)
    assert hits[0].text == "gamma"


def test_failed_write_leaves_previous_state(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://a.example/p", "alpha\nbeta")
    record, passages = page("https://a.example/p", "x\ny")
    bad_vectors = np.zeros((1, EMBEDDER.dimension), dtype=np.float32)  # one vector for two passages
    with pytest.raises(ValueError, match="2 passages but 1 vectors"):
        index.upsert_page(record, passages, bad_vectors)
    assert [h.text for h in index.search(EMBEDDER.embed(["alpha"])[0], k=2)] == ["alpha", "beta"]


def test_remove_page(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://a.example/p", "alpha\nbeta")
    store(index, "https://a.example/q", "gamma")
    assert index.remove_page("https://a.example/p")
    assert not index.remove_page("https://a.example/p")
    assert index.vector_count == 1
    assert index.page_urls() == ["https://a.example/q"]


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        PassageIndex.open(tmp_path, "missing")
    with pytest.raises(InvalidIndexNameError):
        PassageIndex.open(tmp_path, "../etc")
    new_index(tmp_path).close()
    with pytest.raises(EmbedderMismatchError):
        PassageIndex.create_or_open(tmp_path, "docs", embedding_model="other", dimension=8)


def test_read_only_index_refuses_writes(tmp_path: Path) -> None:
    new_index(tmp_path).close()
    reader = PassageIndex.open(tmp_path, "docs")
    with pytest.raises(PermissionError):
        store(reader, "https://a.example/p", "alpha")


def test_unmentioned_lists_terms_no_passage_contains(tmp_path: Path) -> None:
    embedder = HashEmbedder(16)
    index = PassageIndex.create_or_open(tmp_path, "t", embedding_model=embedder.model_name, dimension=16)
    text = "Use json.loads() to parse a JSON document."
    page = PageRecord(url="https://x.example/", title="x", text=text, content_hash="1")
    index.upsert_page(page, [PassageRecord(0, len(text), text)], embedder.embed([text]))
    assert index.unmentioned(["LOADS", "pytest", "json", "pytest"]) == ["pytest"]


# -- provenance, revalidation, duplicates and removal ----------------------------------------

HIGH_SIMHASH = 0xF0F0_0000_0000_0001  # above 2**63: stored as a negative SQLite INTEGER


def store_record(index: PassageIndex, record: PageRecord) -> None:
    """Store a record with one passage per line of its text."""
    _, passages = page(record.url, record.text)
    index.upsert_page(record, passages, EMBEDDER.embed([p.text for p in passages]))


def provenance_page(url: str = "https://a.example/p", **fields: object) -> PageRecord:
    values: dict[str, object] = {
        "url": url,
        "title": "t",
        "text": "alpha\nbeta",
        "content_hash": "h-" + url,
        "author": "Ann",
        "date": "2024-01-02",
        "sitename": "A",
        "language": "en",
        "fetched_at": "2024-05-06T07:08:09Z",
        "status": 200,
        "etag": 'W/"abc"',
        "last_modified": "Tue, 02 Jan 2024 10:00:00 GMT",
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "simhash": HIGH_SIMHASH,
    }
    values.update(fields)
    return PageRecord(**values)  # type: ignore[arg-type]


def test_provenance_round_trips_through_page_and_search_metadata(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    record = provenance_page()
    store_record(index, record)
    assert index.page(record.url) == dataclasses.replace(record, fetched_url=record.url)
    hit = index.search(EMBEDDER.embed(["alpha"])[0], k=1)[0]
    assert hit.metadata == {
        "author": "Ann",
        "date": "2024-01-02",
        "sitename": "A",
        "language": "en",
        "fetched_at": "2024-05-06T07:08:09Z",
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "status": "200",
        "etag": 'W/"abc"',
        "last_modified": "Tue, 02 Jan 2024 10:00:00 GMT",
        "content_hash": "h-https://a.example/p",
        "gone": "false",
    }
    bare = PageRecord(url="https://a.example/q", title="q", text="gamma")
    store_record(index, bare)
    stored = index.page(bare.url)
    assert stored is not None
    assert (stored.status, stored.etag, stored.license, stored.simhash, stored.gone) == (None, None, None, None, False)
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        store_record(index, provenance_page(simhash=1 << 64))
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        store_record(index, provenance_page(simhash=-1))


# The schema of the first stores (e.g. the python-docs index built before `chunking` existed),
# copied verbatim: a store written by that version must keep opening and working.
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pages (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    fetched_url TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    author TEXT, date TEXT, sitename TEXT, language TEXT,
    content_hash TEXT NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY,
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX passages_page ON passages(page_id);
"""


COLUMNS_ADDED_SINCE = {"chunking", "status", "etag", "last_modified", "license", "simhash", "gone"}


def old_store(tmp_path: Path) -> Path:
    """Write an index the way the first version did: old schema, one page of two passages."""
    path = tmp_path / "indexes" / "old"
    path.mkdir(parents=True)
    conn = sqlite3.connect(path / "passages.sqlite")
    conn.executescript(OLD_SCHEMA)
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("embedding_model", EMBEDDER.model_name), ("dimension", str(EMBEDDER.dimension)), ("generation", "1")],
    )
    conn.execute(
        "INSERT INTO pages VALUES (1, 'https://old.example/p', 'https://old.example/p', 'Old', 'alpha\nbeta',"
        " 'Ann', '2020-01-01', 'Old site', 'en', 'hash-old', '2020-01-02T00:00:00Z')"
    )
    for passage_id, (start, text) in enumerate([(0, "alpha"), (6, "beta")], start=1):
        vector = EMBEDDER.embed([text])[0].astype(np.float32).tobytes()
        conn.execute(
            "INSERT INTO passages VALUES (?, 1, ?, ?, '', ?, ?)", (passage_id, start, start + len(text), text, vector)
        )
    conn.commit()
    conn.close()
    return path


def page_columns(path: Path) -> set[str]:
    conn = sqlite3.connect(path / "passages.sqlite")
    try:
        return {row[1] for row in conn.execute("PRAGMA table_info(pages)")}
    finally:
        conn.close()


def test_reader_opens_an_unmigrated_store(tmp_path: Path) -> None:
    path = old_store(tmp_path)
    reader = PassageIndex.open(tmp_path, "old")
    assert page_columns(path) == page_columns_of_fresh(tmp_path) - COLUMNS_ADDED_SINCE
    record = reader.page("https://old.example/p")
    assert record is not None
    assert (record.text, record.author, record.chunking, record.status, record.gone) == (
        "alpha\nbeta",
        "Ann",
        "",
        None,
        False,
    )
    assert reader.page_version("https://old.example/p") == ("hash-old", "")
    assert reader.validators("https://old.example/p") == (None, None)
    hit = reader.search(EMBEDDER.embed(["beta"])[0], k=1)[0]
    assert (hit.text, hit.metadata["sitename"], hit.metadata["etag"], hit.metadata["gone"]) == (
        "beta",
        "Old site",
        None,
        "false",
    )
    assert reader.alias_of("https://old.example/q") is None
    assert reader.aliases("https://old.example/p") == []
    assert reader.page_with_hash("hash-old") == "https://old.example/p"
    assert reader.near_duplicate(0) is None
    assert reader.check_integrity() == []
    assert page_columns(path).isdisjoint({"status", "gone"}), "a reader never migrates"


def page_columns_of_fresh(tmp_path: Path) -> set[str]:
    new_index(tmp_path, "fresh").close()
    return page_columns(tmp_path / "indexes" / "fresh")


def test_writer_migrates_an_old_store_in_place(tmp_path: Path) -> None:
    path = old_store(tmp_path)
    reader_before = PassageIndex.open(tmp_path, "old")  # opened on the old schema, stays usable
    writer = PassageIndex.create_or_open(
        tmp_path, "old", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )
    assert page_columns(path) == page_columns_of_fresh(tmp_path)
    assert writer.generation() == 1, "adding columns changes no row"
    assert writer.page_urls() == ["https://old.example/p"]
    assert writer.page_version("https://old.example/p") == ("hash-old", "")
    assert writer.vector_count == 2
    assert writer.check_integrity() == []
    assert [h.text for h in writer.search(EMBEDDER.embed(["alpha"])[0], k=1)] == ["alpha"]
    # The old page takes part in everything new.
    assert writer.mark_fetched("https://old.example/p", status=304, etag='"e1"')
    writer.add_alias("https://old.example/p?print=1", "https://old.example/p", "exact")
    store_record(writer, provenance_page("https://old.example/new"))
    assert writer.check_integrity() == []
    assert reader_before.page("https://old.example/p") is not None
    assert reader_before.search(EMBEDDER.embed(["beta"])[0], k=1)[0].metadata["status"] is None
    reader_after = PassageIndex.open(tmp_path, "old")
    assert reader_after.validators("https://old.example/p") == ('"e1"', None)
    assert reader_after.alias_of("https://old.example/p?print=1") == ("https://old.example/p", "exact")
    writer.close()
    again = PassageIndex.create_or_open(
        tmp_path, "old", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )
    assert again.page_count() == 2


def test_validators_revalidation_and_gone(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    url = "https://a.example/p"
    assert index.validators(url) is None
    store_record(index, provenance_page(url))
    assert index.validators(url) == ('W/"abc"', "Tue, 02 Jan 2024 10:00:00 GMT")
    generation = index.generation()
    assert index.mark_fetched(url, status=304, fetched_at="2025-01-01T00:00:00Z")
    after = index.page(url)
    assert after is not None
    assert (after.status, after.fetched_at, after.text, after.etag) == (
        304,
        "2025-01-01T00:00:00Z",
        "alpha\nbeta",
        'W/"abc"',
    )
    assert index.generation() == generation + 1
    assert index.mark_fetched(url, status=304, etag='"new"')
    assert index.validators(url) == ('"new"', "Tue, 02 Jan 2024 10:00:00 GMT")
    assert index.vector_count == 2
    assert not index.mark_fetched("https://a.example/missing", status=304)

    assert index.mark_gone(url)
    assert index.search(EMBEDDER.embed(["alpha"])[0], k=1)[0].metadata["gone"] == "true"
    generation = index.generation()
    assert index.mark_gone(url), "marking again is not an error"
    assert index.generation() == generation, "an unchanged flag is no change"
    assert index.mark_fetched(url, status=304)
    assert index.page(url).gone is False  # type: ignore[union-attr]
    assert index.mark_gone(url)
    assert index.mark_gone(url, gone=False)
    assert index.page(url).gone is False  # type: ignore[union-attr]
    assert not index.mark_gone("https://a.example/missing")


def test_alias_lifecycle(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    kept, dup, moved = "https://a.example/kept", "https://a.example/dup", "https://a.example/old-path"
    store_record(index, provenance_page(kept))
    index.add_alias(dup, kept, "exact")
    index.add_alias(moved, kept, "redirect")
    assert index.alias_of(dup) == (kept, "exact")
    assert index.alias_of(kept) is None
    assert index.aliases(kept) == [(dup, "exact"), (moved, "redirect")]
    index.add_alias(dup, kept, "near")  # upsert
    assert index.alias_of(dup) == (kept, "near")
    with pytest.raises(ValueError, match="itself"):
        index.add_alias(kept, kept, "exact")
    with pytest.raises(ValueError, match="stored page"):
        index.add_alias(kept, "https://a.example/other", "exact")
    with pytest.raises(ValueError, match="is itself an alias"):
        index.add_alias("https://a.example/x", dup, "exact")
    with pytest.raises(ValueError, match="kind"):
        index.add_alias("https://a.example/x", kept, "copy")  # type: ignore[arg-type]
    store_record(index, provenance_page(kept, text="alpha\ngamma"))  # re-ingest keeps its aliases
    assert [url for url, _ in index.aliases(kept)] == [dup, moved]
    assert index.check_integrity() == []

    store_record(index, provenance_page(dup))  # the URL now has its own content: a page, not an alias
    assert index.alias_of(dup) is None
    assert index.aliases(kept) == [(moved, "redirect")]

    index.add_alias("https://a.example/pending", "https://a.example/not-yet-stored", "redirect")
    assert index.check_integrity() == ["1 aliases of pages that are not stored"]
    index.remove_pages("https://a.example/pending")
    assert index.remove_page(kept)
    assert index.alias_of(moved) is None
    assert index.check_integrity() == []


def test_duplicate_lookup_by_hash_and_simhash(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    first, second = "https://a.example/1", "https://a.example/2"
    store_record(index, provenance_page(first, content_hash="same", simhash=HIGH_SIMHASH))
    store_record(index, provenance_page(second, content_hash="same", simhash=0b1111))
    assert index.page(first).simhash == HIGH_SIMHASH  # type: ignore[union-attr]
    assert index.page_with_hash("same") == first, "the oldest page is the one kept"
    assert index.page_with_hash("same", exclude_url=first) == second
    assert index.page_with_hash("other") is None
    assert index.page_with_hash("") is None

    assert index.near_duplicate(HIGH_SIMHASH ^ 0b111) == first  # 3 bits apart
    assert index.near_duplicate(HIGH_SIMHASH ^ 0b1111) is None  # 4 bits apart
    assert index.near_duplicate(HIGH_SIMHASH ^ 0b1111, max_distance=4) == first
    assert index.near_duplicate(HIGH_SIMHASH, exclude_url=first) is None
    assert index.near_duplicate(0b1011) == second, "the closest page wins"
    assert index.near_duplicate(0b0001) == second  # 3 bits from the second, 61+ from the first
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        index.near_duplicate(-5)

    index.mark_gone(first)  # a page kept after its source went away is no copy to keep
    assert index.page_with_hash("same") == second
    assert index.near_duplicate(HIGH_SIMHASH) is None


def test_remove_pages_by_url_and_by_pattern(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    for url in [
        "https://a.example/old/a",
        "https://a.example/old/b",
        "https://a.example/old/sub/c",
        "https://a.example/new/d",
        "https://a.example/page?id=1",
        "https://a.example/pageXid=1",
    ]:
        store_record(index, provenance_page(url, text=f"text of {url}\nsecond line"))
    index.add_alias("https://a.example/new/d-copy", "https://a.example/old/a", "exact")
    index.add_alias("https://a.example/old/alias", "https://a.example/new/d", "redirect")

    assert index.remove_pages("https://a.example/page?id=1") == ["https://a.example/page?id=1"]
    assert index.page("https://a.example/pageXid=1") is not None, "a stored URL is matched exactly, not as a glob"

    generation = index.generation()
    assert index.remove_pages("https://a.example/old/*") == [
        "https://a.example/old/a",
        "https://a.example/old/b",
        "https://a.example/old/sub/c",
    ]
    assert index.generation() == generation + 1, "one transaction"
    assert index.page_urls() == ["https://a.example/new/d", "https://a.example/pageXid=1"]
    assert index.alias_of("https://a.example/new/d-copy") is None, "aliases of removed pages go"
    assert index.alias_of("https://a.example/old/alias") is None, "aliases matching the pattern go"
    manifest = index.flush()
    assert index.vector_count == manifest.passages == 4
    assert index.check_integrity() == []
    hits = index.search(EMBEDDER.embed(["text of https://a.example/old/a"])[0], k=10)
    assert sorted(h.url for h in hits) == ["https://a.example/new/d"] * 2 + ["https://a.example/pageXid=1"] * 2

    generation = index.generation()
    assert index.remove_pages("https://nowhere.example/*") == []
    assert index.generation() == generation, "removing nothing changes nothing"
    reopened_vectors = PassageIndex.open(tmp_path, "docs").vector_count
    assert reopened_vectors == 4


def test_a_failed_create_or_open_closes_what_it_opened(tmp_path: Path) -> None:
    """A failing open must not leave the store's connection, or an embedded Qdrant folder's lock,
    behind: the lock would refuse every later open in this process until the GC ran."""
    db = tmp_path / "indexes" / "docs" / "passages.sqlite"
    PassageIndex.create_or_open(
        tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=32, vector_backend="qdrant"
    ).close()
    # The error (kept alive, traceback and all) must not be what keeps them open either.
    with pytest.raises(EmbedderMismatchError) as mismatch:
        PassageIndex.create_or_open(tmp_path, "docs", embedding_model="other", dimension=16, vector_backend="qdrant")
    assert open_descriptors(db) == 0
    again = PassageIndex.open(tmp_path, "docs", read_only=False, vector_backend="qdrant")
    again.close()
    del mismatch


@pytest.mark.parametrize("read_only", [False, True])
def test_a_store_that_is_no_database_is_refused_without_a_leak(tmp_path: Path, read_only: bool) -> None:
    db = tmp_path / "indexes" / "docs" / "passages.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a SQLite database\n" * 200)
    opening = (
        functools.partial(PassageIndex.open, tmp_path, "docs") if read_only else functools.partial(new_index, tmp_path)
    )
    with pytest.raises(sqlite3.DatabaseError) as refused:
        opening()
    assert open_descriptors(db) == 0
    del refused


def test_writable_open_migrates_an_old_store(tmp_path: Path) -> None:
    """``open(read_only=False)`` (``citeline index remove``) migrates like ``create_or_open``."""
    path = old_store(tmp_path)
    writer = PassageIndex.open(tmp_path, "old", read_only=False)
    try:
        assert writer.remove_pages("https://old.example/*") == ["https://old.example/p"]
        assert writer.check_integrity() == []
    finally:
        writer.close()
    assert page_columns(path) == page_columns_of_fresh(tmp_path)
