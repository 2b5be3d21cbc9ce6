"""A read-only index follows a writer's commits in place (PassageIndex.refresh), and a writer's
per-page lookups never wait on its own lock."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import citeline.indexes._passages as store_module
from citeline.indexes import HashEmbedder, PageRecord, PassageIndex, PassageRecord, VectorIndexPolicy

EMBEDDER = HashEmbedder(32)


def store(index: PassageIndex, url: str, lines: list[str]) -> None:
    text = "\n".join(lines)
    passages, start = [], 0
    for line in lines:
        passages.append(PassageRecord(start, start + len(line), line))
        start += len(line) + 1
    record = PageRecord(url=url, title=url, text=text, content_hash=str(hash(text)), etag=f'"{hash(text)}"')
    index.upsert_page(record, passages, EMBEDDER.embed(lines))


def writer(tmp_path: Path) -> PassageIndex:
    return PassageIndex.create_or_open(
        tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )


def ranking(index: PassageIndex, query: str) -> list[tuple[int, str, float]]:
    hits = index.search(EMBEDDER.embed([query])[0], k=50)
    return [(h.passage_id, h.text, round(h.score, 5)) for h in hits]


def test_refresh_applies_additions_replacements_with_reused_ids_and_removals(tmp_path: Path) -> None:
    ingest = writer(tmp_path)
    store(ingest, "https://a.example/1", ["one first", "one second"])
    store(ingest, "https://a.example/2", ["two first", "two second", "two third"])
    ingest.flush()
    reader = PassageIndex.open(tmp_path, "docs")
    # Page 2 holds the highest ids: replacing it makes SQLite hand the same ids to new text.
    store(ingest, "https://a.example/2", ["two rewritten", "entirely new words"])
    store(ingest, "https://a.example/3", ["three only"])
    ingest.remove_page("https://a.example/1")
    assert {h.passage_id for h in ingest.search(EMBEDDER.embed(["two rewritten"])[0], k=10)} & {3, 4}
    assert reader.refresh() is True
    fresh = PassageIndex.open(tmp_path, "docs")
    for query in ("two rewritten", "two third", "one first", "three only", "entirely new words"):
        assert ranking(reader, query) == ranking(fresh, query)
    assert reader.vector_count == ingest.vector_count == 3
    assert ranking(reader, "two rewritten")[0][1:] == ("two rewritten", 1.0)
    assert reader.generation() == ingest.generation()
    assert reader.refresh() is True  # nothing new: a no-op
    for index in (reader, fresh, ingest):
        index.close()


def test_refresh_follows_an_ivf_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = VectorIndexPolicy(ivf_min_passages=40, flat_max_passages=20, min_nprobe=64)
    monkeypatch.setattr(PassageIndex, "vector_policy", small)
    ingest = writer(tmp_path)
    for i in range(30):
        store(ingest, f"https://a.example/{i}", [f"page {i} alpha {i * 7}", f"page {i} beta {i * 11}"])
    ingest.flush()
    reader = PassageIndex.open(tmp_path, "docs")
    assert type(reader._vectors.faiss_index).__name__.startswith("IndexIVF")
    store(ingest, "https://a.example/new", ["brand new passage here"])
    ingest.remove_page("https://a.example/3")
    assert reader.refresh() is True
    assert reader.vector_count == ingest.vector_count == 59
    assert reader.search(EMBEDDER.embed(["brand new passage here"])[0], 1)[0].text == "brand new passage here"
    assert all(h.url != "https://a.example/3" for h in reader.search(EMBEDDER.embed(["page 3 alpha 21"])[0], 5))
    reader.close()
    ingest.close()


def test_refresh_refuses_when_the_log_no_longer_reaches_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = writer(tmp_path)
    store(ingest, "https://a.example/1", ["one first", "one second"])
    ingest.flush()
    reader = PassageIndex.open(tmp_path, "docs")
    monkeypatch.setattr(store_module, "REMOVED_LOG_KEEP", 1)
    store(ingest, "https://a.example/1", ["one replaced", "one again", "one more"])
    ingest.flush()  # prunes the log down to its last removal: the reader misses one
    assert reader.refresh() is False
    reopened = PassageIndex.open(tmp_path, "docs")
    assert reopened.vector_count == 3
    for index in (reader, reopened, ingest):
        index.close()


def test_refresh_refuses_a_replaced_store(tmp_path: Path) -> None:
    ingest = writer(tmp_path)
    store(ingest, "https://a.example/1", ["one first"])
    ingest.flush()
    ingest.close()
    reader = PassageIndex.open(tmp_path, "docs")
    shutil.rmtree(tmp_path / "indexes" / "docs")
    rebuilt = writer(tmp_path)
    for i in range(3):
        store(rebuilt, f"https://b.example/{i}", [f"other {i}"])
    assert reader.refresh() is False
    assert reader.search(EMBEDDER.embed(["one first"])[0], 1)[0].text == "one first"  # still its old store
    reader.close()
    rebuilt.close()


def test_crawler_lookups_do_not_wait_for_the_writers_lock(tmp_path: Path) -> None:
    """The crawler asks for validators on its event loop, and the pipeline checks every extracted
    page (stored version, duplicates); a flush holds the writer's lock for the whole FAISS write
    (seconds for a large index), which stalled fetching behind it."""
    ingest = writer(tmp_path)
    store(ingest, "https://a.example/1", ["one first"])
    answers: list[object] = []
    with ingest._lock:  # as a flush or a commit in another thread holds it
        lookup = threading.Thread(
            target=lambda: answers.extend(
                [
                    ingest.validators("https://a.example/1"),
                    ingest.page_version("https://a.example/1"),
                    ingest.page_with_hash(str(hash("one first"))),
                    ingest.near_duplicate(0, max_distance=64),
                ]
            )
        )
        lookup.start()
        lookup.join(timeout=5)
        finished_under_lock = not lookup.is_alive()
    lookup.join()
    assert finished_under_lock
    assert answers[0] == (f'"{hash("one first")}"', None)
    assert answers[1] is not None
    assert answers[2] == "https://a.example/1"
    ingest.close()


def test_reader_snapshot_keeps_vectors_and_sync_point_together(tmp_path: Path) -> None:
    """Opening while a writer commits: whatever the reader loaded, one refresh makes it exact."""
    ingest = writer(tmp_path)
    store(ingest, "https://a.example/0", ["zero"])
    ingest.flush()
    stop = threading.Event()

    def write() -> None:
        i = 1
        while not stop.is_set():
            store(ingest, f"https://a.example/{i % 5}", [f"text {i}", f"more {i}"])
            i += 1

    thread = threading.Thread(target=write)
    thread.start()
    readers = []
    try:
        for _ in range(10):
            readers.append(PassageIndex.open(tmp_path, "docs"))
    finally:
        stop.set()
        thread.join()
    expected = np.sort(np.asarray(store_ids(ingest)))
    for reader in readers:
        assert reader.refresh() is True
        assert np.array_equal(np.sort(np.asarray(store_ids(reader))), expected)
        reader.close()
    ingest.close()


def store_ids(index: PassageIndex) -> list[int]:
    import faiss

    return [int(i) for i in faiss.vector_to_array(index._vectors.faiss_index.id_map)]
