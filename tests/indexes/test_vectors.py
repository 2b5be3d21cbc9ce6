from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from citeline.indexes import (
    FaissVectorStore,
    PageRecord,
    PassageIndex,
    PassageRecord,
    VectorIndexPolicy,
    VectorIndexSpec,
)
from citeline.indexes._vectors import configure_search, new_vector_index, spec_of, train_vector_index

DIM = 32
SMALL = VectorIndexPolicy(ivf_min_passages=400, flat_max_passages=200, min_nprobe=4)
"""Thresholds small enough for a test to cross with a few hundred passages."""


def clustered(count: int, *, dim: int = DIM, centres: int = 20, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres: the structure real embeddings have and IVF relies on."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim)).astype(np.float32)
    points = middle[rng.integers(0, centres, count)] + 0.35 * rng.standard_normal((count, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def store(index: PassageIndex, url: str, vectors: np.ndarray) -> None:
    lines = [f"passage {i} of {url}" for i in range(len(vectors))]
    text = "\n".join(lines)
    passages, start = [], 0
    for line in lines:
        passages.append(PassageRecord(start=start, end=start + len(line), text=line))
        start += len(line) + 1
    index.upsert_page(PageRecord(url=url, title=url, text=text), passages, vectors)


def new_index(tmp_path: Path) -> PassageIndex:
    return PassageIndex.create_or_open(tmp_path, "docs", embedding_model="random", dimension=DIM)


def fill(index: PassageIndex, pages: int, per_page: int = 10) -> np.ndarray:
    vectors = clustered(pages * per_page)
    for page in range(pages):
        store(index, f"https://a.example/{page}", vectors[page * per_page : (page + 1) * per_page])
    return vectors


def test_policy_chooses_by_count_with_hysteresis() -> None:
    flat, ivf = VectorIndexSpec(), VectorIndexSpec("ivf_sq8", 8)
    assert SMALL.choose(0) == flat
    assert SMALL.choose(399) == flat
    assert SMALL.choose(500) == ivf  # sqrt(500) ~ 22 lists, halved until each has 40 training points
    assert SMALL.choose(300, current=ivf) == ivf  # between the thresholds an IVF index stays IVF
    assert SMALL.choose(300, current=flat) == flat  # ... and a Flat one stays Flat
    assert SMALL.choose(199, current=ivf) == flat
    assert SMALL.choose(1200, current=ivf) == ivf  # 16 lists wanted: within the retrain factor
    assert SMALL.choose(40_000, current=ivf) == VectorIndexSpec("ivf_sq8", 256)  # 32x off: retrain


def test_default_policy_keeps_the_demo_index_flat_and_a_million_on_ivf() -> None:
    policy = VectorIndexPolicy()
    assert policy.choose(14_000).kind == "flat"
    big = policy.choose(1_000_000)
    assert big == VectorIndexSpec("ivf_sq8", 1024)
    assert policy.nprobe_for(big.nlist) == 64
    assert policy.train_size(big.nlist, 1_000_000) == 40_960


def test_spec_factory_strings_round_trip() -> None:
    for spec in (VectorIndexSpec(), VectorIndexSpec("ivf_sq8", 1024)):
        assert VectorIndexSpec.parse(spec.factory) == spec
    assert VectorIndexSpec().factory == "IDMap2,Flat"
    with pytest.raises(ValueError, match="unknown vector index"):
        VectorIndexSpec.parse("HNSW32,SQ8")
    with pytest.raises(ValueError, match="nlist"):
        VectorIndexSpec("ivf_sq8", 0)


def test_ivf_recall_against_exact_search_on_clustered_vectors() -> None:
    points = clustered(4100, dim=64, centres=40)
    data, queries = points[:4000], points[4000:]  # held out: queries are not stored vectors
    exact = faiss.IndexFlatIP(64)
    exact.add(data)
    _, truth = exact.search(queries, 10)
    spec = SMALL.choose(len(data))
    index = new_vector_index(spec, 64)
    train_vector_index(index, data[:: len(data) // SMALL.train_size(spec.nlist, len(data))], seed=SMALL.seed)
    index.add_with_ids(data, np.arange(len(data), dtype=np.int64))
    configure_search(index, SMALL)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)])
    assert spec_of(index) == spec
    assert recall >= 0.95


def test_index_above_the_threshold_is_rebuilt_as_ivf_at_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PassageIndex, "vector_policy", SMALL)
    index = new_index(tmp_path)
    vectors = fill(index, 50)
    assert spec_of(index._vectors.faiss_index) == VectorIndexSpec()  # adds never change the kind
    manifest = index.flush()
    assert manifest.faiss_index == "IVF8,SQ8"
    assert json.loads((index.path / "manifest.json").read_text())["faiss_index"] == "IVF8,SQ8"
    assert index.vector_count == 500
    assert index.search(vectors[123], k=1)[0].text == "passage 3 of https://a.example/12"

    # Replacing and removing pages works on the live IVF index, without a rebuild.
    store(index, "https://a.example/12", clustered(4, seed=7))
    assert index.remove_page("https://a.example/13")
    assert index.vector_count == 484
    hits = index.search(vectors[133], k=20)
    assert all(hit.url != "https://a.example/13" for hit in hits)
    assert index.check_integrity() == []
    index.flush()
    index.close()

    def no_rebuild(self: FaissVectorStore, spec: VectorIndexSpec | None = None) -> None:
        raise AssertionError("reopened by rebuilding, not from the saved file")

    with monkeypatch.context() as patch:
        patch.setattr(FaissVectorStore, "rebuild", no_rebuild)
        reopened = PassageIndex.open(tmp_path, "docs")
    assert reopened.manifest().faiss_index == "IVF8,SQ8"
    assert reopened._vectors.faiss_index.nprobe == SMALL.nprobe_for(8)
    assert reopened.vector_count == 484
    assert reopened.search(vectors[7], k=1)[0].text == "passage 7 of https://a.example/0"


def test_stale_file_is_rebuilt_as_the_kind_the_count_calls_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PassageIndex, "vector_policy", SMALL)
    index = new_index(tmp_path)
    fill(index, 50)
    index.close()  # never flushed: the FAISS file is older than the store
    reopened = PassageIndex.open(tmp_path, "docs")
    assert reopened.manifest().faiss_index == "IVF8,SQ8"
    assert reopened.vector_count == 500


def test_shrinking_below_the_lower_threshold_goes_back_to_flat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PassageIndex, "vector_policy", SMALL)
    index = new_index(tmp_path)
    fill(index, 50)
    assert index.flush().faiss_index == "IVF8,SQ8"
    assert index.remove_pages("https://a.example/2*") == [f"https://a.example/{n}" for n in (2, *range(20, 30))]
    assert index.flush().faiss_index == "IVF8,SQ8"  # 390 passages: between the thresholds
    index.remove_pages("https://a.example/3*")
    index.remove_pages("https://a.example/4*")
    manifest = index.flush()
    assert (manifest.passages, manifest.faiss_index) == (170, "IDMap2,Flat")
    assert index.check_integrity() == []


def test_a_flat_index_written_before_ivf_opens_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = new_index(tmp_path)
    vectors = fill(index, 5)
    manifest = index.manifest()
    # Exactly what earlier versions wrote: a serialized IDMap2 over IndexFlatIP and its manifest.
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    old.add_with_ids(vectors, np.arange(1, 51, dtype=np.int64))
    (index.path / "vectors.faiss").write_bytes(faiss.serialize_index(old).tobytes())
    (index.path / "manifest.json").write_text(json.dumps(manifest.to_json() | {"faiss_index": "IDMap2,Flat"}))
    index.close()
    monkeypatch.setattr(PassageIndex, "vector_policy", VectorIndexPolicy(ivf_min_passages=20, flat_max_passages=10))

    def no_rebuild(self: FaissVectorStore, spec: VectorIndexSpec | None = None) -> None:
        raise AssertionError("rebuilt on open")

    with monkeypatch.context() as patch:
        patch.setattr(FaissVectorStore, "rebuild", no_rebuild)
        reader = PassageIndex.open(tmp_path, "docs")
    # Over the (patched) threshold, a reader still serves the Flat file it found ...
    assert reader.manifest().faiss_index == "IDMap2,Flat"
    assert reader.search(vectors[11], k=1)[0].text == "passage 1 of https://a.example/1"
    # ... and the next writer's flush rebuilds it as IVF.
    writer = PassageIndex.open(tmp_path, "docs", read_only=False)
    assert writer.flush().faiss_index == "IVF1,SQ8"
    assert writer.search(vectors[11], k=1)[0].text == "passage 1 of https://a.example/1"
