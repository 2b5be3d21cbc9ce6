"""Where an ingest's CPU work runs. The pipeline's loop and its decisions (unchanged, duplicate, new,
failed; batching, journalling, storing) are the same for every engine; an :class:`Engine` only says
where a page is extracted and chunked and where passages are embedded.

:class:`LocalEngine` does both in this process's worker threads, one page at a time; the Ray engine
(``ingest.ray_engine``) runs extraction and chunking as Ray tasks, many pages ahead, and embeds on a
Ray Data actor pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from citeline.indexes import Embedder, PassageRecord, Vectors
from citeline.ingest._exceptions import ExtractionError
from citeline.ingest.chunk import ChunkSizes, chunk
from citeline.ingest.dedup import simhash
from citeline.ingest.documents import extract_fetched
from citeline.ingest.extract import ExtractedPage
from citeline.ingest.fetch import FetchedPage
from citeline.ingest.pdf import PdfLimits


@dataclass(frozen=True, slots=True)
class ProcessedPage:
    """One page extracted; its passages and SimHash are asked for only when the pipeline needs them
    (a page stored unchanged needs neither), so an engine may compute them lazily or in advance."""

    page: ExtractedPage
    passages: Callable[[], Sequence[PassageRecord]]
    fingerprint: Callable[[], int | None]


PageResult = ProcessedPage | str
"""A processed page, or the reason its extraction failed (the page's failure, not the run's)."""


class Engine(Protocol):
    """Runs the pipeline's CPU stages."""

    lookahead: int
    """Pages handed to :meth:`process` before the oldest one's result is awaited; 1: one at a time."""
    batch_passages: int | None
    """Passages gathered before one :meth:`embed` call; None: the pipeline's ``embed_batch_passages``."""

    def process(
        self, page: FetchedPage, url: str, sizes: ChunkSizes, pdf: PdfLimits | None = None
    ) -> Awaitable[PageResult]:
        """Start extracting (and chunking) one page (HTML, PDF...) cited under ``url``; awaiting gives the result."""
        ...

    def embed(self, embedder: Embedder, texts: list[str], batch_size: int) -> Vectors:
        """The vectors of ``texts``, in order; called from a worker thread."""
        ...


def extract_text(page: FetchedPage, url: str, sizes: ChunkSizes, pdf: PdfLimits | None = None) -> PageResult:
    """Extract one page; passages and SimHash are computed when first asked for."""
    try:
        extracted = extract_fetched(page, url, pdf)
    except ExtractionError as exc:
        return exc.reason
    return ProcessedPage(
        extracted,
        passages=lambda: chunk(extracted.text, extracted.headings, sizes),
        fingerprint=lambda: simhash(extracted.text),
    )


class LocalEngine:
    """Extraction in a worker thread, one page at a time; embedding by the driver's own embedder."""

    lookahead: int = 1
    batch_passages: int | None = None

    def process(
        self, page: FetchedPage, url: str, sizes: ChunkSizes, pdf: PdfLimits | None = None
    ) -> Awaitable[PageResult]:
        return asyncio.to_thread(extract_text, page, url, sizes, pdf)

    def embed(self, embedder: Embedder, texts: list[str], batch_size: int) -> Vectors:
        return embedder.embed(texts, batch_size=batch_size)
