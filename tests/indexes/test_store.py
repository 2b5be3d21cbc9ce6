from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexes import (
    EmbedderMismatchError,
    HashEmbedder,
    IndexNotFoundError,
    InvalidIndexNameError,
    PageRecord,
    PassageIndex,
    PassageRecord,
    list_indexes,
)

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
