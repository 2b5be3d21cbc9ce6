"""citeline's ingest layer: build indexes from web pages. Imports only ``indexes``.

Stages, one module each: ``fetch`` -> ``extract`` -> ``chunk`` -> (embed, store: ``indexes``),
tied together by ``pipeline`` (where extraction and embedding run: ``engine``; the run's knobs:
``options``; wired from settings by ``runner``). Inputs besides a crawl: ``sitemaps``, ``feeds``,
``directories``, ``warc``. Politeness: ``robots``, ``pacing``, ``retries``, ``tdmrep``, ``optout``.
"""

from citeline.indexes import embedding_text  # defined by the index layer, which indexes the same text
from citeline.ingest._exceptions import (
    ExtractionError,
    FetchError,
    IngestError,
    MarkupError,
    OutOfScopeError,
    TooLargeError,
)
from citeline.ingest._settings import IngestSettings
from citeline.ingest.chunk import ChunkSizes, chunk
from citeline.ingest.extract import ExtractedPage, extract
from citeline.ingest.fetch import (
    Crawler,
    CrawlItem,
    CrawlLimits,
    FetchedPage,
    FetchFailure,
    NotModified,
    make_client,
)
from citeline.ingest.journal import CrawlJournal
from citeline.ingest.ondemand import BlockedAddressError, OnDemandFetcher, Validators, extract_page
from citeline.ingest.options import IngestOptions, UrlMap
from citeline.ingest.pipeline import IngestPipeline, page_record
from citeline.ingest.retries import parse_retry_after
from citeline.ingest.runner import IngestInputs, run_ingest
from citeline.ingest.scope import CrawlScope, canonical, scope_prefix
from citeline.ingest.summary import IngestProgress, IngestSummary, PageFailure, ProgressCallback

__all__ = [
    "BlockedAddressError",
    "ChunkSizes",
    "CrawlItem",
    "CrawlJournal",
    "CrawlLimits",
    "CrawlScope",
    "Crawler",
    "ExtractedPage",
    "ExtractionError",
    "FetchError",
    "FetchFailure",
    "FetchedPage",
    "IngestError",
    "IngestInputs",
    "IngestOptions",
    "IngestPipeline",
    "IngestProgress",
    "IngestSettings",
    "IngestSummary",
    "MarkupError",
    "NotModified",
    "OnDemandFetcher",
    "OutOfScopeError",
    "PageFailure",
    "ProgressCallback",
    "TooLargeError",
    "UrlMap",
    "Validators",
    "canonical",
    "chunk",
    "embedding_text",
    "extract",
    "extract_page",
    "make_client",
    "page_record",
    "parse_retry_after",
    "run_ingest",
    "scope_prefix",
]
