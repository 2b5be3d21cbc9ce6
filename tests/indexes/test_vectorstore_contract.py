"""One contract for every vector store: FAISS files and Qdrant (embedded local mode, no server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from indexes import (
    EmbedderMismatchError,
    FaissVectorStore,
    IndexCorruptError,
    QdrantVectorStore,
    VectorIndexPolicy,
    VectorIndexSpec,
    VectorStore,
    open_vector_store,
)
from indexes._vectors import write_vector_index

DIM = 16
Opener = Callable[[], VectorStore]


def unit(count: int, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((count, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


@pytest.fixture(params=["faiss", "qdrant"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store of one index folder; each call reopens it (after the previous one is closed)."""
    opened: list[VectorStore] = []

    def open_store() -> VectorStore:
        store = open_vector_store(request.param, tmp_path / "docs", DIM)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> VectorStore:
    return opener()


def scores_of(store: VectorStore, vector: np.ndarray, k: int) -> dict[int, float]:
    return dict(store.search(vector, k))


def test_backends_satisfy_the_protocol(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)


def test_empty_store_finds_nothing(store: VectorStore) -> None:
    assert store.count() == 0
    assert store.search(unit(1)[0], 5) == []
    assert store.search(unit(1)[0], 5, page_ids=[1]) == []
    store.remove([1, 2])
    store.remove_page(7)
    assert store.count() == 0


def test_search_orders_by_cosine_and_scores_are_cosine(store: VectorStore) -> None:
    vectors = unit(30)
    store.add(list(range(1, 31)), vectors, [i // 10 for i in range(30)])
    query = unit(1, seed=9)[0]
    cosine = vectors @ query
    expected = [int(i) + 1 for i in np.argsort(-cosine)[:5]]
    found = store.search(query, 5)
    assert [i for i, _ in found] == expected
    assert [s for _, s in found] == pytest.approx([float(cosine[i - 1]) for i in expected], abs=1e-5)
    assert store.search(vectors[3], 1)[0][0] == 4
    assert store.search(vectors[3], 1)[0][1] == pytest.approx(1.0, abs=1e-5)


def test_k_larger_than_count_returns_everything(store: VectorStore) -> None:
    store.add([5, 6, 7], unit(3), [1, 1, 2])
    assert sorted(i for i, _ in store.search(unit(1, seed=3)[0], 50)) == [5, 6, 7]
    assert store.search(unit(1, seed=3)[0], 0) == []


def test_delete_by_id(store: VectorStore) -> None:
    vectors = unit(4)
    store.add([1, 2, 3, 4], vectors, [1, 1, 2, 2])
    store.remove([2, 99])
    assert store.count() == 3
    assert 2 not in scores_of(store, vectors[1], 10)
    assert store.search(vectors[1], 1, page_ids=[1])[0][0] == 1


def test_delete_by_page(store: VectorStore) -> None:
    vectors = unit(6)
    store.add([1, 2, 3, 4, 5, 6], vectors, [1, 1, 2, 2, 3, 3])
    store.remove_page(2)
    assert store.count() == 4
    assert set(scores_of(store, vectors[2], 10)) == {1, 2, 5, 6}
    store.remove_page(2)
    assert store.count() == 4


def test_filter_by_pages(store: VectorStore) -> None:
    vectors = unit(40)
    store.add(list(range(1, 41)), vectors, [i % 4 for i in range(40)])
    query = vectors[0]  # passage 1 is on page 0, which the filter leaves out
    found = store.search(query, 3, page_ids={1, 3})
    allowed = [i for i in range(40) if i % 4 in {1, 3}]
    best = sorted(allowed, key=lambda i: -float(vectors[i] @ query))[:3]
    assert [i for i, _ in found] == [i + 1 for i in best]
    assert store.search(query, 3, page_ids=[]) == []
    assert store.search(query, 3, page_ids=[42]) == []
    assert len(store.search(query, 100, page_ids=[2])) == 10


def test_re_adding_an_id_replaces_its_vector_and_page(store: VectorStore) -> None:
    vectors = unit(3)
    store.add([1, 2], vectors[:2], [1, 1])
    store.add([2], vectors[2:], [5])
    assert store.count() == 2
    assert store.search(vectors[2], 1) == [(2, pytest.approx(1.0, abs=1e-5))]
    assert [i for i, _ in store.search(vectors[2], 5, page_ids=[1])] == [1]
    store.remove_page(5)
    assert store.count() == 1


def test_persist_and_reopen(opener: Opener) -> None:
    vectors = unit(12)
    store = opener()
    store.add(list(range(10, 22)), vectors, [i // 3 for i in range(12)])
    store.remove([10])
    store.persist()
    before = store.search(vectors[4], 5)
    store.close()
    reopened = opener()
    assert reopened.count() == 11
    assert reopened.search(vectors[4], 5) == [(i, pytest.approx(s, abs=1e-5)) for i, s in before]
    reopened.remove_page(1)  # passages 13-15: the page map came back too
    assert reopened.count() == 8


def test_wrong_dimension_is_refused(store: VectorStore) -> None:
    with pytest.raises(EmbedderMismatchError):
        store.add([1], np.ones((1, DIM + 1), dtype=np.float32), [1])
    with pytest.raises(EmbedderMismatchError):
        store.search(np.ones(DIM + 1, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="ids"):
        store.add([1, 2], unit(1), [1])


# -- backend specifics -----------------------------------------------------------------------


SMALL = VectorIndexPolicy(ivf_min_passages=400, flat_max_passages=200, min_nprobe=2)


def test_faiss_follows_the_policy_from_its_source_and_filters_on_ivf(tmp_path: Path) -> None:
    vectors = unit(600, seed=4)
    ids = list(range(1, 601))
    pages = [i // 10 for i in range(600)]

    def source() -> Iterator[tuple[list[int], np.ndarray, list[int]]]:
        for start in range(0, 600, 128):
            yield ids[start : start + 128], vectors[start : start + 128], pages[start : start + 128]

    path = tmp_path / "vectors.faiss"
    store = FaissVectorStore(path, DIM, policy=SMALL, source=source)
    assert store.spec.kind == "ivf_sq8"
    assert store.count() == 600
    # A filtered IVF search probes every list: the one page's passages all come back.
    assert sorted(i for i, _ in store.search(vectors[0], 50, page_ids=[7])) == list(range(71, 81))
    store.persist()
    reopened = FaissVectorStore(path, DIM, policy=SMALL)
    assert reopened.spec == store.spec
    assert reopened.count() == 600


def test_faiss_files_that_disagree_are_rebuilt_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.faiss"
    store = FaissVectorStore(path, DIM)
    store.add([1, 2], unit(2), [1, 1])
    store.persist()
    store.add([3], unit(1, seed=2), [2])
    # The FAISS file of a later state next to the old page map: a crash between the two writes.
    write_vector_index(store._index, path)
    with pytest.raises(IndexCorruptError):
        FaissVectorStore(path, DIM)
    rebuilt = FaissVectorStore(path, DIM, source=lambda: [([1, 2, 3], unit(3), [1, 1, 2])])
    assert rebuilt.count() == 3
    assert rebuilt.spec == VectorIndexSpec()


def test_qdrant_needs_one_location_and_keeps_its_dimension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        QdrantVectorStore("docs", DIM)
    QdrantVectorStore("docs", DIM, path=tmp_path / "q").close()
    with pytest.raises(EmbedderMismatchError):
        QdrantVectorStore("docs", DIM * 2, path=tmp_path / "q")
