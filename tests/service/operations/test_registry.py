"""Readers against a concurrent ingest writer: leases, in-place catch-up, no index closed under a request."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citeline.indexes import FaissVectorStore, HashEmbedder, IndexNotFoundError, PageRecord, PassageIndex, PassageRecord
from citeline.service.answering import RetrievalConfig, Retriever
from citeline.service.operations import IndexRegistry
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)


def writer(data_dir: Path) -> PassageIndex:
    return PassageIndex.create_or_open(
        data_dir, "docs", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )


def store(index: PassageIndex, url: str, lines: list[str]) -> None:
    text = "\n".join(lines)
    passages, start = [], 0
    for line in lines:
        passages.append(PassageRecord(start, start + len(line), line))
        start += len(line) + 1
    index.upsert_page(PageRecord(url=url, title=url, text=text, content_hash=url + text), passages,
                      EMBEDDER.embed(lines))  # fmt: skip


def top(index: PassageIndex, text: str) -> str:
    hits = index.search(EMBEDDER.embed([text])[0], 1)
    return hits[0].text if hits else ""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    one_page_index(tmp_path, EMBEDDER, "alpha beta gamma\ndelta epsilon zeta")
    return tmp_path


def test_a_held_index_keeps_working_across_commits(data_dir: Path) -> None:
    """Before leases, the next get() after a commit closed the index another request still held."""
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    ingest = writer(data_dir)
    with registry.lease("docs") as held:
        store(ingest, "https://docs.example/new.html", ["kappa lambda mu", "nu xi omicron"])
        with registry.lease("docs") as latest:
            assert top(latest, "kappa lambda mu") == "kappa lambda mu"
        # The first request's handle still searches, and sees the commit too.
        assert top(held, "nu xi omicron") == "nu xi omicron"
        assert held.page("https://docs.example/new.html") is not None
    ingest.close()
    registry.close()


def test_commits_are_caught_up_without_a_rebuild(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest commit must cost a reader the changed rows only, never a rebuild from the whole store."""
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    with registry.lease("docs"):
        pass

    def no_rebuild(*_: Any, **__: Any) -> Any:
        raise AssertionError("a reader rebuilt its vectors from the whole store")

    monkeypatch.setattr(FaissVectorStore, "rebuild", no_rebuild)
    ingest = writer(data_dir)
    for i in range(3):  # the manifest lags: the writer never flushes here
        store(ingest, f"https://docs.example/{i}.html", [f"page{i} first line", f"page{i} second line"])
        with registry.lease("docs") as index:
            assert top(index, f"page{i} second line") == f"page{i} second line"
            assert index.vector_count == 2 + 2 * (i + 1)
    ingest.close()
    registry.close()


def test_replaced_store_closes_the_old_index_only_after_its_last_lease(data_dir: Path) -> None:
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    closed: list[PassageIndex] = []
    registry.on_close(closed.append)
    old = registry.acquire("docs")
    # The index is removed and built again (citeline index remove, then a new ingest).
    shutil.rmtree(data_dir / "indexes" / "docs")
    one_page_index(data_dir, EMBEDDER, "rebuilt index text")
    with registry.lease("docs") as new:
        assert new is not old.index
        assert top(new, "rebuilt index text") == "rebuilt index text"
    assert top(old.index, "alpha beta gamma") == "alpha beta gamma"  # still open for its holder
    assert closed == []
    held = old.index
    old.release()
    old.release()  # a second release is a no-op, not a second close
    assert closed == [held]
    with pytest.raises(sqlite3.ProgrammingError):
        held.page_count()
    registry.close()


def test_an_index_removed_for_good_is_unknown_and_closed_when_free(data_dir: Path) -> None:
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    closed: list[PassageIndex] = []
    registry.on_close(closed.append)
    with registry.lease("docs"):
        pass
    shutil.rmtree(data_dir / "indexes" / "docs")
    with pytest.raises(IndexNotFoundError):
        registry.acquire("docs")
    assert len(closed) == 1
    registry.close()


def test_the_retriever_keeps_a_held_index_searchable(data_dir: Path) -> None:
    """Retriever._for closed the BM25/MMR helper of an index still in use when another index object
    of the same path came along (the old registry reopened on every commit)."""
    retriever = Retriever(EMBEDDER, RetrievalConfig(mode="hybrid"))
    first = PassageIndex.open(data_dir, "docs")
    second = PassageIndex.open(data_dir, "docs")
    held = retriever._for(first)
    retriever.search(second, "alpha beta", 1)
    assert held.search("alpha beta", 1, "hybrid")[0].text == "alpha beta gamma"
    retriever.forget(first)
    retriever.forget(second)
    first.close()
    second.close()


def test_readers_and_a_writer_in_threads(data_dir: Path) -> None:
    """Searches through leases while pages are added, replaced and removed: no error, ever."""
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    retriever = Retriever(EMBEDDER)
    registry.on_close(retriever.forget)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                with registry.lease("docs") as index:
                    retriever.search(index, "line of page", 3)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    ingest = writer(data_dir)
    try:
        for i in range(40):
            store(ingest, f"https://docs.example/{i % 7}.html", [f"line of page {i}", f"another line {i}"])
            if i % 5 == 4:
                ingest.remove_page(f"https://docs.example/{i % 3}.html")
            if i % 10 == 9:
                ingest.flush()
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert errors == []
    with registry.lease("docs") as index:
        assert index.vector_count == ingest.vector_count
        ids = sorted(int(i) for i in faiss_ids(index))
        assert ids == sorted(int(i) for i in faiss_ids(ingest))
    ingest.close()
    registry.close()


def faiss_ids(index: PassageIndex) -> np.ndarray[Any, np.dtype[np.int64]]:
    import faiss

    return faiss.vector_to_array(index._vectors.faiss_index.id_map)


def test_a_closed_registry_reopens_on_the_next_lease(data_dir: Path) -> None:
    """The app closes its registry when its lifespan ends; a lifespan that starts again reuses it."""
    registry = IndexRegistry(data_dir, EMBEDDER.model_name, EMBEDDER.dimension)
    with registry.lease("docs") as first:
        pass
    registry.close()
    with pytest.raises(sqlite3.ProgrammingError):
        first.page_count()
    with registry.lease("docs") as again:
        assert top(again, "alpha beta gamma") == "alpha beta gamma"
    registry.close()
