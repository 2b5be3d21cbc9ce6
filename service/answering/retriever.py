"""Finding passages for a question in one index or a set of sources."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from citeline.indexes import Embedder, HybridRetriever, PassageIndex, RetrievalMode, SearchHit, Vectors
from citeline.service.answering.source_set import SourceSet, as_sources


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How passages are found for a question."""

    mode: RetrievalMode = "dense"
    """``dense`` (embeddings), ``hybrid`` (dense and BM25 fused by reciprocal rank) or ``bm25``."""
    mmr: bool = True
    """Re-rank the candidates by maximal marginal relevance, so near-repeats give way to other
    passages (hit@5 never lower than plain dense on the Python and Django FAQ sets; see README)."""
    mmr_lambda: float = 0.7
    """MMR's weight on relevance against novelty (1: relevance only)."""


class Retriever:
    """Searches whichever index it is handed with one configuration.

    Keeps one :class:`HybridRetriever` per open index object (its BM25 index is built on first use)
    until :meth:`forget`: an index reopened after its store was replaced gets its own, while
    requests still holding the old one keep searching theirs.
    """

    def __init__(self, embedder: Embedder, config: RetrievalConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._by_index: dict[PassageIndex, HybridRetriever] = {}
        self._lock = threading.Lock()

    def _for(self, index: PassageIndex) -> HybridRetriever:
        with self._lock:
            current = self._by_index.get(index)
            if current is None:
                current = HybridRetriever(index, self.embedder, mmr_lambda=self.config.mmr_lambda)
                self._by_index[index] = current
            return current

    def search(self, index: PassageIndex, question: str, k: int, *, vector: Vectors | None = None) -> list[SearchHit]:
        """The ``k`` best passages, best first, each scored by its cosine to the question."""
        if self.config.mode == "dense" and not self.config.mmr:
            return index.search(self.embedder.embed([question])[0] if vector is None else vector, k)
        return self._for(index).search(question, k, self.config.mode, mmr=self.config.mmr, vector=vector)

    def search_sources(
        self, sources: PassageIndex | SourceSet, question: str, k: int, *, vector: Vectors | None = None
    ) -> list[SearchHit]:
        """The ``k`` best passages over a :class:`SourceSet`: each index searched as :meth:`search`
        does, then the lists merged by :meth:`SourceSet.merge` (a lone index keeps its ranking)."""
        sources = as_sources(sources)
        if vector is None:
            vector = self.embedder.embed([question])[0]
        stored: list[SearchHit] = []
        if sources.stored is not None:
            # Hits of superseded pages are dropped after the search: ask for enough to still fill k.
            wanted = k * 2 if sources.superseded else k
            stored = self.search(sources.stored, question, wanted, vector=vector)
        live: list[SearchHit] = []
        if sources.live is not None:
            live = self.search(sources.live, question, k, vector=vector)
        return sources.merge(stored, live, k)

    def forget(self, index: PassageIndex) -> None:
        """Drop what is kept for an index being closed (a question's live pages, an index the registry
        closes once nobody holds it)."""
        with self._lock:
            current = self._by_index.pop(index, None)
        if current is not None:
            current.close()
