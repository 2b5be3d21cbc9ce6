"""Where one question's passages come from: the stored index, pages fetched for it, or both.

A :class:`SourceSet` is what :class:`service.answering.Answerer` answers from. It holds the stored
index and, when live pages were asked for, a temporary index of those pages; stored pages that a
live copy replaces (a page that changed since indexing, or one the question also fetched) are
``superseded``, so the answer never quotes the stale text next to the current one. The report
types below travel with the answer, so a user sees what was fetched, skipped and rechecked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from citeline.indexes import PassageIndex, SearchHit

SourceMode = Literal["index", "live", "both"]
"""``index``: the stored index only; ``live``: only pages fetched for the question; ``both``: one
ranking over the two (the same embedder scores both, so their cosines compare)."""

LiveOrigin = Literal["url", "search", "recheck"]
"""Why a page was fetched: named in the request, found by web search, or rechecked for an index hit."""

LIVE_KEY = "live_origin"
"""Metadata key a hit from a live page carries (its :data:`LiveOrigin`)."""
INDEXED_AT_KEY = "indexed_at"
"""Metadata key of a rechecked page's hit: when the stored copy, now replaced, was fetched."""


@dataclass(frozen=True, slots=True)
class LivePageReport:
    """A page fetched (or taken from the short-lived cache) for this question."""

    url: str
    title: str
    origin: LiveOrigin
    status: int
    fetched_at: str
    """When citeline fetched the page (UTC); a cached page keeps the time it was really fetched."""
    content_hash: str
    """sha256 of the extracted text the citations' offsets index into."""
    cached: bool
    fetch_ms: float
    """Download and extraction (0 when cached)."""
    passages: int
    """Passages of the page embedded and searched for this question."""


@dataclass(frozen=True, slots=True)
class SkippedPage:
    """A page asked for that the answer does not use, and why."""

    url: str
    kind: str
    """``budget`` (not fetched within the time budget, not waited for), ``robots``, ``opt_out``,
    ``blocked``, ``size``, ``type``, ``gone``, ``empty`` (no text), ``limit`` or ``error``."""
    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class RecheckReport:
    """A stored page behind a retrieved passage, revalidated before answering."""

    url: str
    outcome: Literal["unchanged", "changed", "gone", "failed"]
    indexed_at: str
    """When the stored copy was fetched."""
    indexed_hash: str
    current_hash: str | None
    """sha256 of the current text (None when the server said 304 or the fetch failed)."""
    status: int | None
    """304: not modified; 200: fetched again; 404/410: gone; None: no answer."""
    checked_at: str | None
    note: str


@dataclass(frozen=True, slots=True)
class SearchResultReport:
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class SearchReport:
    """The web search the question was turned into."""

    provider: str
    query: str
    results: list[SearchResultReport]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LiveReport:
    """What question-time fetching did for one answer."""

    sources: SourceMode
    budget_s: float
    pages: list[LivePageReport] = field(default_factory=list)
    skipped: list[SkippedPage] = field(default_factory=list)
    rechecked: list[RecheckReport] = field(default_factory=list)
    search: SearchReport | None = None
    fetch_ms: float = 0.0
    """From the request to the last page fetched and extracted (or the budget's end)."""
    embed_ms: float = 0.0
    """Embedding the live pages' passages chosen for the question."""
    total_ms: float = 0.0


@dataclass(slots=True)
class SourceSet:
    """The indexes one question is answered from. :meth:`close` deletes the live one."""

    stored: PassageIndex | None
    live: PassageIndex | None = None
    superseded: frozenset[str] = frozenset()
    """URLs of stored pages whose passages must not be used (a live copy replaces them, or the
    page is gone)."""
    live_metadata: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per live page URL, what its hits carry besides the page's own provenance (why it was
    fetched, and for a rechecked page when its stored copy was indexed)."""
    live_texts: Sequence[str] = ()
    """Full text of every live page: the off-corpus check looks for the question's rare terms in
    the whole page, as only some of its passages were embedded."""
    report: LiveReport | None = None
    notices: list[str] = field(default_factory=list)
    """Plain sentences for the reader (a page changed since indexing, a page skipped...)."""

    @property
    def name(self) -> str:
        return self.stored.name if self.stored is not None else "live"

    @property
    def indexes(self) -> list[PassageIndex]:
        return [i for i in (self.stored, self.live) if i is not None]

    def unmentioned(self, terms: Sequence[str]) -> list[str]:
        """The terms no source mentions (case-insensitive substring, as :meth:`PassageIndex.unmentioned`)."""
        missing = list(terms)
        if self.stored is not None:
            missing = self.stored.unmentioned(missing)
        if self.live is not None:
            texts = [t.lower() for t in self.live_texts]
            missing = [term for term in missing if not any(term.lower() in text for text in texts)]
        return missing

    def merge(self, stored_hits: Sequence[SearchHit], live_hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
        """One ranking of ``k``: stored hits of superseded pages dropped, then the two lists merged
        by cosine. Each list keeps its own order (the retriever's, diversified by MMR), so the merge
        takes whichever list's next hit is closer to the question."""
        stored = [h for h in stored_hits if h.url not in self.superseded]
        live = [replace(h, metadata={**h.metadata, **self.live_metadata.get(h.url, {})}) for h in live_hits]
        merged: list[SearchHit] = []
        while len(merged) < k and (stored or live):
            if stored and (not live or stored[0].score >= live[0].score):
                merged.append(stored.pop(0))
            else:
                merged.append(live.pop(0))
        return merged

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
            self.live = None


def as_sources(index: PassageIndex | SourceSet) -> SourceSet:
    return index if isinstance(index, SourceSet) else SourceSet(stored=index)
