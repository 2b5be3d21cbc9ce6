"""Ingest settings: how politely and how hard to crawl, and how to cut passages."""

from __future__ import annotations

from pydantic import Field

from citeline.indexes import CitelineSettings
from citeline.ingest.chunk import ChunkSizes
from citeline.ingest.pdf import PdfLimits


class IngestSettings(CitelineSettings):
    """Crawler and chunker settings (``CITELINE_*`` env vars or the TOML config file)."""

    user_agent: str = "citeline/0.1 (+https://github.com/citeline/citeline; crawler contact)"
    """Sent with every request, so site owners can see who crawls them and how to reach us; its
    product token (``citeline``) is what robots.txt groups and bot-specific meta tags match."""
    concurrency: int = 8
    """Requests in flight at once, over all hosts."""
    per_host_delay: float = 1.0
    """Seconds between two requests to the same host (a larger robots.txt Crawl-delay wins)."""
    respect_robots: bool = True
    """Honour robots.txt (RFC 9309). Turning it off is for crawling your own mirror only."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Private addresses the crawler may reach on purpose (``127.0.0.1:8765``, ``10.0.0.0/8``,
    ``localhost``); every other loopback, private, link-local... address is refused. Ingest only
    (``citeline ingest`` and jobs of an ``ingest`` key): live pages read ``live_allow_hosts``."""
    live_allow_hosts: list[str] = Field(default_factory=list)
    """Private addresses pages fetched at question time may come from (``urls``, ``search`` results,
    ``recheck``), in the same forms. Empty by default: any ``read`` caller can name a live URL, so a
    network opened for ingest is not opened to them."""
    conditional_get: bool = True
    """Revalidate stored pages with If-None-Match / If-Modified-Since: an unchanged page costs a 304."""
    embed_batch_passages: int = 64
    """Passages gathered before embedding and storing them: pages are finished (and checkpointed)
    in batches of about this size."""
    max_retries: int = 3
    """Retries of a 429/503 answer, with exponential back-off and ``Retry-After`` honoured."""
    connect_timeout: float = 5.0
    """Seconds to open a connection."""
    read_timeout: float = 15.0
    """Seconds to wait for the next bytes of a response."""
    total_timeout: float = 30.0
    """Seconds a whole page may take, body included."""
    max_redirects: int = 5
    """Redirects followed per page before giving up."""
    max_page_bytes: int = 5_000_000
    """Decoded body size cap per page (a PDF's bytes too)."""
    pdf_max_pages: int = 500
    """A PDF with more pages is skipped, with its page count as the reason."""
    pdf_timeout: float = 60.0
    """Seconds one PDF's text extraction may take (in a worker process, killed past it)."""
    max_pages: int = 1000
    """Pages fetched per run when the command names no limit."""
    passage_words: int = 120
    """Target passage length in words (all-MiniLM-L6-v2 reads at most 256 word pieces)."""
    passage_max_words: int = 180
    """Hard cap on passage length in words; longer lines are split at sentence ends."""
    passage_min_words: int = 25
    """Passages shorter than this are merged into the next one where possible."""

    def pdf_limits(self) -> PdfLimits:
        """The bounds of one PDF's extraction these settings ask for."""
        return PdfLimits(self.pdf_max_pages, self.pdf_timeout)

    def chunk_sizes(self) -> ChunkSizes:
        """The passage sizes these settings ask for, as the chunker takes them."""
        return ChunkSizes(self.passage_words, self.passage_max_words, self.passage_min_words)
