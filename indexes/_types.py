"""Records stored in and returned by an index."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One ingested page: its provenance and the extracted text every passage points into."""

    url: str
    """The URL citations link to (the public URL when the page was crawled from a mirror)."""
    title: str
    text: str
    """The page's main text as extracted; passage offsets index into this string."""
    fetched_url: str = ""
    """The URL the page was actually fetched from, when different from ``url``."""
    author: str | None = None
    date: str | None = None
    sitename: str | None = None
    language: str | None = None
    content_hash: str = ""
    chunking: str = ""
    """How the passages were cut (chunker version and sizes): a change means re-chunking."""
    fetched_at: str = ""


@dataclass(frozen=True, slots=True)
class PassageRecord:
    """A span of a page's text, the unit that is embedded and retrieved."""

    start: int
    """Offset of the first character in the page's extracted text."""
    end: int
    """Offset one past the last character."""
    text: str
    heading: str = ""
    """The nearest section heading above the passage, when the extractor kept one."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A retrieved passage with the page it belongs to."""

    passage_id: int
    score: float
    """Cosine similarity between the query and the passage (higher is closer)."""
    text: str
    start: int
    end: int
    heading: str
    url: str
    title: str
    page_id: int
    metadata: dict[str, str | None] = field(default_factory=dict)
