"""What an ingest run reports: its summary (counts, failures, stage times, what a cap left out) and
the progress it reports while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ProgressCallback = Callable[["IngestProgress"], None]


@dataclass(frozen=True, slots=True)
class PageFailure:
    url: str
    stage: str
    """``fetch`` or ``extract``."""
    reason: str
    status: int | None = None
    kind: str = "error"
    """``robots``, ``opt_out``, ``scope``, ``size``, ``type``, ``blocked``, ``gone`` or ``error``."""


@dataclass(slots=True)
class IngestProgress:
    fetched: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    passages: int = 0
    budget: int = 0


SKIP_KINDS = ("robots", "opt_out", "scope", "size", "type", "blocked", "error")


@dataclass(slots=True)
class IngestSummary:
    index: str
    seeds: list[str]
    pages_fetched: int = 0
    """Pages whose body was downloaded (a 304 is not counted here)."""
    pages_new: int = 0
    pages_updated: int = 0
    """Pages stored before whose text changed: their passages were replaced."""
    pages_unchanged: int = 0
    """Pages already stored with identical text, or answered 304: nothing re-embedded."""
    pages_not_modified: int = 0
    """Of the unchanged, those the server answered 304 to a conditional GET."""
    pages_removed: int = 0
    """Stored pages removed (or marked gone) because they answered 404/410 or now opt out."""
    pages_gone: int = 0
    """Pages that answered 404/410."""
    duplicates: int = 0
    """Pages recorded as aliases of a stored page (exact or near duplicate), not indexed again."""
    passages_added: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_KINDS, 0))
    """Pages not kept, by reason."""
    failures: list[PageFailure] = field(default_factory=list)
    resumed: bool = False
    """The run picked up an interrupted job of the same command."""
    resumed_done: int = 0
    """URLs the interrupted run had finished, not fetched again."""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {"fetch": 0.0, "fetch_wait": 0.0, "extract_chunk": 0.0, "embed": 0.0, "store": 0.0}
    )
    """Seconds spent per stage. Stages overlap, so these add up to more than :attr:`seconds`:
    ``fetch`` sums every page's download time (several are in flight at once); ``fetch_wait`` is
    the time the pipeline sat waiting for the next page, the part of fetching nothing overlapped;
    ``extract_chunk``, ``embed`` and ``store`` (index writes and flushes) are busy time."""
    index_pages: int = 0
    index_passages: int = 0
    page_cap: int | None = None
    """``max_pages`` of the run: None when nothing capped it (a ``--dir`` or WARC run without one)."""
    left_by_cap: dict[str, int] = field(default_factory=dict)
    """What the cap left out, by input: ``urls`` found by the crawl (or listed by a sitemap or feed:
    at least one past the cap is counted there) but never fetched, ``files`` of ``--dir`` and
    ``warc_records`` (responses) never read. Empty when the cap stopped nothing."""

    @property
    def pages_indexed(self) -> int:
        """Pages stored by this run (new, or changed since the last run)."""
        return self.pages_new + self.pages_updated

    @property
    def pages_per_second(self) -> float:
        return (self.pages_fetched + self.pages_not_modified) / self.seconds if self.seconds else 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages_added / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "seeds": self.seeds,
            "resumed": self.resumed,
            "resumed_done": self.resumed_done,
            "pages_fetched": self.pages_fetched,
            "pages_indexed": self.pages_indexed,
            "pages_new": self.pages_new,
            "pages_updated": self.pages_updated,
            "pages_unchanged": self.pages_unchanged,
            "pages_not_modified": self.pages_not_modified,
            "pages_removed": self.pages_removed,
            "pages_gone": self.pages_gone,
            "duplicates": self.duplicates,
            "skipped": dict(self.skipped),
            "page_cap": self.page_cap,
            "left_by_cap": dict(self.left_by_cap),
            "pages_failed": len(self.failures),
            "passages_added": self.passages_added,
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages_per_second, 2),
            "passages_per_second": round(self.passages_per_second, 2),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "index_pages": self.index_pages,
            "index_passages": self.index_passages,
            "failures": [
                {"url": f.url, "stage": f.stage, "kind": f.kind, "reason": f.reason, "status": f.status}
                for f in self.failures
            ],
        }
