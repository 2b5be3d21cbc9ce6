"""One contract for every vector store: FAISS files of each kind it builds, and Qdrant (embedded local mode).

Each implementation is opened through an :class:`Impl`: how to open (and reopen) the store of one
folder, and how far its scores may stray from exact cosines (IVF-SQ8 stores 8-bit codes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from citeline.indexes import (
    EmbedderMismatchError,
    FaissVectorStore,
    IndexCorruptError,
    QdrantVectorStore,
    VectorIndexPolicy,
    VectorIndexSpec,
    VectorStore,
    open_vector_store,
)
from citeline.indexes._vectors import write_vector_index

DIM = 16
Opener = Callable[[], VectorStore]


def unit(count: int, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((count, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


IVF = VectorIndexSpec("ivf_sq8", 4)
IVF_POLICY = VectorIndexPolicy(min_nprobe=4)
"""Probes every list of a 4-list index: the only inexactness left is the 8-bit codes."""


def open_ivf(folder: Path, dimension: int = DIM) -> VectorStore:
    path = folder / "vectors.faiss"
    if path.exists():
        return FaissVectorStore(path, dimension, policy=IVF_POLICY)
    folder.mkdir(parents=True, exist_ok=True)
    return FaissVectorStore.trained(path, dimension, IVF, unit(400, seed=99)[:, :dimension], policy=IVF_POLICY)


@dataclass(frozen=True)
class Impl:
    name: str
    open: Callable[[Path, int], VectorStore]
    """Opens the store of one folder: a new one, or the one persisted there."""
    tolerance: float = 1e-5
    """How far a score may be from the exact cosine."""


IMPLEMENTATIONS = [
    Impl("faiss-flat", lambda folder, dim: open_vector_store("faiss", folder, dim)),
    Impl("faiss-ivf_sq8", open_ivf, tolerance=0.05),
    Impl("qdrant-embedded", lambda folder, dim: open_vector_store("qdrant", folder, dim)),
]


@pytest.fixture(params=IMPLEMENTATIONS, ids=[impl.name for impl in IMPLEMENTATIONS])
def impl(request: pytest.FixtureRequest) -> Impl:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def opener(impl: Impl, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store of one index folder; each call reopens it (after the previous one is closed)."""
    opened: list[VectorStore] = []

    def open_store() -> VectorStore:
        store = impl.open(tmp_path / "docs", DIM)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> VectorStore:
    return opener()


def ids_of(store: VectorStore, vector: np.ndarray, k: int) -> set[int]:
    return {i for i, _ in store.search(vector, k)}


def test_implementations_satisfy_the_protocol(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)


def test_empty_store_finds_nothing(store: VectorStore) -> None:
    assert store.count() == 0
    assert store.search(unit(1)[0], 5) == []
    store.remove([1, 2])
    store.remove_page(7)
    assert store.count() == 0


def test_search_orders_by_cosine_and_scores_are_cosine(store: VectorStore, impl: Impl) -> None:
    vectors = unit(30)
    store.add(list(range(1, 31)), vectors, [i // 10 for i in range(30)])
    query = unit(1, seed=9)[0]
    cosine = {i + 1: float(c) for i, c in enumerate(vectors @ query)}
    expected = sorted(cosine, key=lambda i: -cosine[i])[:5]
    found = store.search(query, 5)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    assert scores == pytest.approx([cosine[i] for i, _ in found], abs=impl.tolerance)
    if impl.tolerance <= 1e-5:
        assert [i for i, _ in found] == expected
    else:  # quantised: a swap is allowed only between passages as close as the codes are coarse
        assert [cosine[i] for i, _ in found] == pytest.approx([cosine[i] for i in expected], abs=2 * impl.tolerance)
    assert store.search(vectors[3], 1)[0][0] == 4
    assert store.search(vectors[3], 1)[0][1] == pytest.approx(1.0, abs=impl.tolerance)


def test_k_larger_than_count_returns_everything(store: VectorStore) -> None:
    store.add([5, 6, 7], unit(3), [1, 1, 2])
    assert sorted(i for i, _ in store.search(unit(1, seed=3)[0], 50)) == [5, 6, 7]
    assert store.search(unit(1, seed=3)[0], 0) == []


def test_delete_by_id(store: VectorStore) -> None:
    vectors = unit(4)
    store.add([1, 2, 3, 4], vectors, [1, 1, 2, 2])
    store.remove([2, 99])
    assert store.count() == 3
    assert ids_of(store, vectors[1], 10) == {1, 3, 4}
    store.remove_page(1)  # the page map lost passage 2 with its vector
    assert ids_of(store, vectors[1], 10) == {3, 4}


def test_delete_by_page(store: VectorStore) -> None:
    vectors = unit(6)
    store.add([1, 2, 3, 4, 5, 6], vectors, [1, 1, 2, 2, 3, 3])
    store.remove_page(2)
    assert store.count() == 4
    assert ids_of(store, vectors[2], 10) == {1, 2, 5, 6}
    store.remove_page(2)
    assert store.count() == 4


def test_re_adding_an_id_replaces_its_vector_and_page(store: VectorStore, impl: Impl) -> None:
    vectors = unit(3)
    store.add([1, 2], vectors[:2], [1, 1])
    store.add([2], vectors[2:], [5])
    assert store.count() == 2
    assert store.search(vectors[2], 1) == [(2, pytest.approx(1.0, abs=impl.tolerance))]
    store.remove_page(1)  # passage 2 left page 1 when it was replaced
    assert ids_of(store, vectors[2], 5) == {2}
    store.remove_page(5)
    assert store.count() == 0


def test_adding_nothing_changes_nothing(store: VectorStore) -> None:
    store.add([], np.empty((0, DIM), dtype=np.float32), [])
    assert store.count() == 0


def test_persist_and_reopen(opener: Opener, impl: Impl) -> None:
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
    reopened.add([30], unit(1, seed=5), [9])  # and the reopened store takes new vectors
    assert reopened.search(unit(1, seed=5)[0], 1)[0][0] == 30


def test_changes_after_persist_are_not_lost_by_a_second_persist(opener: Opener) -> None:
    vectors = unit(6)
    store = opener()
    store.add([1, 2, 3], vectors[:3], [1, 1, 1])
    store.persist()
    store.add([4, 5, 6], vectors[3:], [2, 2, 2])
    store.remove([1])
    store.persist()
    store.close()
    reopened = opener()
    assert reopened.count() == 5
    assert ids_of(reopened, vectors[0], 10) == {2, 3, 4, 5, 6}


def test_wrong_dimension_is_refused(store: VectorStore) -> None:
    with pytest.raises(EmbedderMismatchError):
        store.add([1], np.ones((1, DIM + 1), dtype=np.float32), [1])
    with pytest.raises(EmbedderMismatchError):
        store.search(np.ones(DIM + 1, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="ids"):
        store.add([1, 2], unit(1), [1])
    with pytest.raises(ValueError, match="duplicate"):
        store.add([1, 1], unit(2), [1, 1])
    assert store.count() == 0


def test_reopening_with_another_dimension_is_refused(impl: Impl, tmp_path: Path) -> None:
    store = impl.open(tmp_path / "docs", DIM)
    store.add([1, 2], unit(2), [1, 1])
    store.persist()
    store.close()
    with pytest.raises(EmbedderMismatchError):
        impl.open(tmp_path / "docs", DIM // 2).close()


# -- backend specifics -----------------------------------------------------------------------


SMALL = VectorIndexPolicy(ivf_min_passages=400, flat_max_passages=200, min_nprobe=2)


def test_faiss_follows_the_policy_from_its_source(tmp_path: Path) -> None:
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
    store.remove_page(7)
    assert store.count() == 590
    store.persist()
    reopened = FaissVectorStore(path, DIM, policy=SMALL)
    assert reopened.spec == store.spec
    assert reopened.count() == 590


def test_faiss_with_a_page_source_keeps_no_page_map_file(tmp_path: Path) -> None:
    """How :class:`PassageIndex` uses it: the page map comes from SQLite, the FAISS file is the format."""
    vectors = unit(5)
    truth = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}

    def source() -> list[tuple[list[int], np.ndarray, list[int]]]:
        return [(list(truth), vectors[[i - 1 for i in truth]], list(truth.values()))]

    def pages() -> list[tuple[int, int]]:
        return list(truth.items())

    path = tmp_path / "vectors.faiss"
    store = FaissVectorStore(path, DIM, source=source, pages=pages)
    assert store.count() == 5
    store.persist()
    assert path.is_file()
    assert not (tmp_path / "vectors.faiss.pages.npy").exists()
    del truth[5]
    store.remove_page(3)
    store.persist()
    reopened = FaissVectorStore(path, DIM, source=source, pages=pages)
    assert reopened.count() == 4
    reopened.remove_page(1)
    assert ids_of(reopened, vectors[0], 10) == {3, 4}


def test_faiss_files_that_disagree_are_rebuilt_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.faiss"
    store = FaissVectorStore(path, DIM)
    store.add([1, 2], unit(2), [1, 1])
    store.persist()
    store.add([3], unit(1, seed=2), [2])
    # The FAISS file of a later state next to the old page map: a crash between the two writes.
    write_vector_index(store.faiss_index, path)
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
