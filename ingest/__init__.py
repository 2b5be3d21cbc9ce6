"""citeline's ingest layer: build indexes from web pages. Imports only ``indexes``.

Stages, one module each: ``fetch`` -> ``extract`` -> ``chunk`` -> (embed, store: ``indexes``),
tied together by ``pipeline``.
"""

from ingest._exceptions import ExtractionError, FetchError, IngestError, OutOfScopeError, TooLargeError
from ingest._settings import IngestSettings
from ingest.chunk import ChunkSizes, chunk
from ingest.extract import ExtractedPage, extract
from ingest.fetch import Crawler, CrawlLimits, FetchedPage, FetchFailure, canonical, make_client, scope_prefix
from ingest.pipeline import (
    IngestPipeline,
    IngestProgress,
    IngestSummary,
    PageFailure,
    ProgressCallback,
    UrlMap,
    embedding_text,
)
from ingest.runner import run_ingest

__all__ = [
    "ChunkSizes",
    "CrawlLimits",
    "Crawler",
    "ExtractedPage",
    "ExtractionError",
    "FetchError",
    "FetchFailure",
    "FetchedPage",
    "IngestError",
    "IngestPipeline",
    "IngestProgress",
    "IngestSettings",
    "IngestSummary",
    "OutOfScopeError",
    "PageFailure",
    "ProgressCallback",
    "TooLargeError",
    "UrlMap",
    "canonical",
    "chunk",
    "embedding_text",
    "extract",
    "make_client",
    "run_ingest",
    "scope_prefix",
]
