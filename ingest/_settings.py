"""Ingest settings: how politely and how hard to crawl, and how to cut passages."""

from __future__ import annotations

from indexes import CitelineSettings


class IngestSettings(CitelineSettings):
    """Crawler and chunker settings (``CITELINE_*`` env vars or the TOML config file)."""

    user_agent: str = "citeline/0.1 (+https://github.com/citeline/citeline)"
    """Sent with every request, so site owners can see who crawls them."""
    concurrency: int = 8
    """Requests in flight at once, over all hosts."""
    per_host_delay: float = 0.0
    """Seconds between two requests to the same host (issue-4 politeness builds on this)."""
    connect_timeout: float = 5.0
    """Seconds to open a connection."""
    read_timeout: float = 15.0
    """Seconds to wait for the next bytes of a response."""
    total_timeout: float = 30.0
    """Seconds a whole page may take, body included."""
    max_redirects: int = 5
    """Redirects followed per page before giving up."""
    max_page_bytes: int = 5_000_000
    """Decoded body size cap per page."""
    max_pages: int = 1000
    """Pages fetched per run when the command names no limit."""
    passage_words: int = 120
    """Target passage length in words (all-MiniLM-L6-v2 reads at most 256 word pieces)."""
    passage_max_words: int = 180
    """Hard cap on passage length in words; longer lines are split at sentence ends."""
    passage_min_words: int = 25
    """Passages shorter than this are merged into the next one where possible."""
