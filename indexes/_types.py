"""Records stored in and returned by an index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AliasKind = Literal["exact", "near", "redirect"]
"""Why a URL is an alias of a stored page: identical text, near-identical text (SimHash), or a redirect."""
ALIAS_KINDS: tuple[AliasKind, ...] = ("exact", "near", "redirect")


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
    status: int | None = None
    """HTTP status of the last fetch (304 when a conditional GET found the page unchanged)."""
    etag: str | None = None
    """The ``ETag`` response header, verbatim: sent back as ``If-None-Match`` on re-ingest."""
    last_modified: str | None = None
    """The ``Last-Modified`` response header, verbatim: sent back as ``If-Modified-Since``."""
    license: str | None = None
    """The page's license, as a URL or a name."""
    simhash: int | None = None
    """64-bit SimHash of the text, unsigned (0 <= simhash < 2**64), for near-duplicate detection."""
    gone: bool = False
    """The source answered 404/410 and the page was kept (marked) rather than removed."""


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


PDF_PAGE_KEY = "pdf_page"
"""The :attr:`SearchHit.metadata` key of a PDF passage's page number (1-based, as a string);
absent for any other page."""


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
