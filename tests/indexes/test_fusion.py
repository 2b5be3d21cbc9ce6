from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citeline.indexes import (
    HashEmbedder,
    HybridRetriever,
    PageRecord,
    PassageIndex,
    PassageRecord,
    maximal_marginal_relevance,
    reciprocal_rank_fusion,
)

EMBEDDER = HashEmbedder(64)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


# -- reciprocal-rank fusion --------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert scores[4] == pytest.approx(1 / 63)


def test_rrf_k_zero_is_plain_reciprocal_rank_and_weights_scale_each_list() -> None:
    assert dict(reciprocal_rank_fusion([[7, 8]], k=0)) == {7: 1.0, 8: 0.5}
    fused = reciprocal_rank_fusion([[1, 2], [2, 1]], k=0, weights=[1.0, 3.0])
    assert [item for item, _ in fused] == [2, 1]
    assert [score for _, score in fused] == pytest.approx([0.5 + 3.0, 1.0 + 1.5])


def test_rrf_breaks_ties_by_best_rank_then_earlier_list() -> None:
    # 1 and 2 both score 1/61 + 1/62; 5 and 6 both 1/63, 5 from the first list.
    assert [item for item, _ in reciprocal_rank_fusion([[1, 2, 5], [2, 1, 6]])] == [1, 2, 5, 6]
    assert [item for item, _ in reciprocal_rank_fusion([[2, 1, 6], [1, 2, 5]])] == [2, 1, 6, 5]


def test_rrf_counts_a_repeated_id_once_and_handles_empty_lists() -> None:
    assert reciprocal_rank_fusion([[4, 4, 5]], k=0) == [(4, 1.0), (5, pytest.approx(1 / 3))]
    assert reciprocal_rank_fusion([[], [9]], k=0) == [(9, 1.0)]
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([[1]], weights=[1.0, 2.0])


# -- MMR ---------------------------------------------------------------------------------------


def test_mmr_prefers_a_second_page_over_a_near_duplicate() -> None:
    vectors = np.vstack([unit(1, 0, 0), unit(1, 0.05, 0), unit(0, 1, 0)])
    relevance = [1.0, 0.95, 0.8]
    assert maximal_marginal_relevance(relevance, vectors, 2, lambda_=0.7) == [0, 2]
    assert maximal_marginal_relevance(relevance, vectors, 3, lambda_=1.0) == [0, 1, 2]


def test_mmr_page_penalty_spreads_picks_over_pages_when_vectors_differ() -> None:
    # The second passage of page 10 is unlike the first, so similarity alone keeps it second.
    vectors = np.vstack([unit(1, 0, 0), unit(0, 0, 1), unit(0.6, 0.8, 0)])
    relevance = [1.0, 0.9, 0.85]
    pages = [10, 10, 20]
    assert maximal_marginal_relevance(relevance, vectors, 2, lambda_=0.7, groups=pages) == [0, 1]
    assert maximal_marginal_relevance(relevance, vectors, 2, lambda_=0.7, groups=pages, group_penalty=0.3) == [0, 2]


def test_mmr_edge_cases() -> None:
    vectors = np.vstack([unit(1, 0), unit(0, 1)])
    assert maximal_marginal_relevance([0.5, 0.9], vectors, 5) == [1, 0]
    assert maximal_marginal_relevance([], np.zeros((0, 2), dtype=np.float32), 3) == []
    assert maximal_marginal_relevance([0.5, 0.9], vectors, 0) == []
    with pytest.raises(ValueError, match="lambda_"):
        maximal_marginal_relevance([0.5, 0.9], vectors, 1, lambda_=1.5)
    with pytest.raises(ValueError, match="one entry per candidate"):
        maximal_marginal_relevance([0.5], vectors, 1)


# -- the retriever -----------------------------------------------------------------------------


def store(index: PassageIndex, url: str, lines: list[str]) -> None:
    text = "\n".join(lines)
    record = PageRecord(url=url, title="", text=text, content_hash=str(hash(text)))
    passages, start = [], 0
    for line in lines:
        passages.append(PassageRecord(start=start, end=start + len(line), text=line))
        start += len(line) + 1
    index.upsert_page(record, passages, EMBEDDER.embed([f"\n{p.text}" for p in passages]))


@pytest.fixture
def index(tmp_path: Path) -> PassageIndex:
    index = PassageIndex.create_or_open(
        tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )
    store(
        index,
        "https://d.example/files",
        [
            "reading files line by line with open",
            "reading files line by line with open and a loop",
            "os.path.splitext splits a file name",
        ],
    )
    store(index, "https://d.example/io", ["reading files in binary mode"])
    store(index, "https://d.example/json", ["json.loads parses text", "json.dumps writes text"])
    return index


def test_every_mode_scores_hits_by_their_cosine(index: PassageIndex) -> None:
    retriever = HybridRetriever(index, EMBEDDER)
    question = "reading files line by line"
    cosine = {h.passage_id: h.score for h in index.search(EMBEDDER.embed([question])[0], 10)}
    for mode in ("dense", "bm25", "hybrid"):
        for mmr in (False, True):
            hits = retriever.search(question, 3, mode, mmr=mmr)
            assert hits, (mode, mmr)
            assert all(h.score == pytest.approx(cosine[h.passage_id], abs=1e-5) for h in hits), (mode, mmr)


def test_bm25_and_hybrid_find_an_identifier(index: PassageIndex) -> None:
    retriever = HybridRetriever(index, EMBEDDER)
    assert retriever.search("splitext", 1, "bm25")[0].text == "os.path.splitext splits a file name"
    assert retriever.search("how do I use splitext", 1, "hybrid")[0].text == "os.path.splitext splits a file name"
    assert retriever.search("zebra", 3, "bm25") == []


def test_mmr_with_a_page_penalty_spreads_hits_over_pages(index: PassageIndex) -> None:
    question = "reading files line by line with open"
    plain = HybridRetriever(index, EMBEDDER).search(question, 2, "hybrid")
    assert [h.url for h in plain] == ["https://d.example/files"] * 2
    diverse = HybridRetriever(index, EMBEDDER, page_penalty=0.5).search(question, 2, "hybrid", mmr=True)
    assert [h.url for h in diverse] == ["https://d.example/files", "https://d.example/io"]


def test_the_retriever_follows_store_changes(index: PassageIndex) -> None:
    retriever = HybridRetriever(index, EMBEDDER)
    assert retriever.search("tomllib", 3, "bm25") == []
    store(index, "https://d.example/toml", ["tomllib parses TOML"])
    assert [h.text for h in retriever.search("tomllib", 3, "bm25")] == ["tomllib parses TOML"]
    index.remove_page("https://d.example/toml")
    assert retriever.search("tomllib", 3, "bm25") == []


def test_an_empty_index_returns_nothing_in_every_mode(tmp_path: Path) -> None:
    empty = PassageIndex.create_or_open(
        tmp_path, "empty", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )
    retriever = HybridRetriever(empty, EMBEDDER)
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.search("anything", 5, mode) == []
        assert retriever.search("anything", 5, mode, mmr=True) == []


def test_an_unknown_mode_is_refused(index: PassageIndex) -> None:
    with pytest.raises(ValueError, match="mode"):
        HybridRetriever(index, EMBEDDER).search("x", 3, "sparse")  # type: ignore[arg-type]


def test_a_writing_retriever_saves_its_bm25_index_and_a_reading_one_loads_it(index: PassageIndex) -> None:
    writer = HybridRetriever(index, EMBEDDER, read_only=False)
    assert writer.lexical.stats.source == "built"
    assert (index.path / "bm25" / "current.json").is_file()
    reader = HybridRetriever(index, EMBEDDER)
    assert reader.lexical.stats.source == "loaded"
    assert [h.passage_id for h in reader.search("splitext", 3, "bm25")] == [
        h.passage_id for h in writer.search("splitext", 3, "bm25")
    ]
