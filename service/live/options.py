"""What a question asks of live pages, validated: the request fields and the service's limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from citeline.indexes import PassageIndex, SearchHit
from citeline.service.answering.source_set import (
    SourceMode,
)

Retrieve = Callable[[PassageIndex, str, int], list[SearchHit]]
"""Searches the stored index as the answer will (to know which pages to recheck)."""


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """How question-time fetching behaves."""

    budget_s: float = 8.0
    """Seconds from the request to the last page fetched and extracted (search included); pages
    not ready by then are skipped."""
    max_urls: int = 10
    """Pages fetched for one question, named and found by search together (rechecks aside)."""
    passages_per_page: int = 24
    """Passages of one live page embedded per question at most, the best by BM25 against it."""
    max_passages: int = 64
    """Passages embedded per question over all its live pages (each page keeps its best two):
    embedding is the slow part, ~30 passages/s on 2 cores."""
    cache_ttl_s: float = 300.0
    """Seconds a fetched page is reused without asking its server again (0: no cache)."""
    cache_pages: int = 128
    """Pages the cache holds at most (least recently used go first)."""
    search_results: int = 3
    """Top web-search results fetched when a question asks for a search."""


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """The live options of one question."""

    sources: SourceMode
    urls: tuple[str, ...] = ()
    search: bool = False
    recheck: bool = False
    top_k: int = 4
    """Passages the answer retrieves: the pages behind that many stored hits are rechecked."""
    budget_s: float | None = None
    """This question's budget (default: the configured one)."""


class LiveOptions(msgspec.Struct, kw_only=True):
    """Request fields that bring live pages into an answer (``/v1/ask`` and chat)."""

    urls: Annotated[
        list[str],
        msgspec.Meta(
            max_length=10,
            description="Pages to fetch now and answer from (robots.txt, opt-outs and SSRF rules apply).",
        ),
    ] = msgspec.field(default_factory=list)
    sources: Annotated[
        Literal["index", "live", "both"] | None,
        msgspec.Meta(
            description="index: the stored index; live: only pages fetched now; both: one ranking over the"
            " two. Default: both when urls or search are given, else index."
        ),
    ] = None
    search: Annotated[
        bool, msgspec.Meta(description="Search the web (the configured SearxNG) and fetch the top results.")
    ] = False
    recheck: Annotated[
        bool,
        msgspec.Meta(
            description="Revalidate the stored pages behind the retrieved passages (conditional GET); a page"
            " that changed is answered from and cited as it is now, and the answer says so."
        ),
    ] = False
    budget_s: (
        Annotated[float, msgspec.Meta(gt=0, le=30, description="Seconds allowed for fetching (default: the server's).")]
        | None
    ) = None

    def live_request(self, top_k: int) -> LiveRequest | None:
        """The live options, or None when the question uses the stored index alone."""
        if not (self.urls or self.search or self.recheck or self.sources not in (None, "index")):
            return None
        sources: SourceMode = self.sources or ("both" if self.urls or self.search else "index")
        return LiveRequest(sources, tuple(self.urls), self.search, self.recheck, top_k, self.budget_s)
