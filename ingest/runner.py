"""Wire settings, embedder, index and HTTP client into one ingest run."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from indexes import Embedder, PassageIndex
from ingest._settings import IngestSettings
from ingest.chunk import ChunkSizes
from ingest.fetch import Crawler, CrawlLimits, make_client
from ingest.pipeline import IngestPipeline, IngestSummary, ProgressCallback, UrlMap


async def run_ingest(
    seeds: Sequence[str],
    *,
    settings: IngestSettings,
    embedder: Embedder,
    index_name: str | None = None,
    max_pages: int | None = None,
    max_depth: int = 10,
    url_map: UrlMap | None = None,
    progress: ProgressCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> IngestSummary:
    """Crawl ``seeds`` into the named index (created on first use) and return the run's summary."""
    index = PassageIndex.create_or_open(
        settings.data_dir,
        index_name or settings.index,
        embedding_model=embedder.model_name,
        dimension=embedder.dimension,
    )
    limits = CrawlLimits(
        max_pages=max_pages or settings.max_pages,
        max_depth=max_depth,
        concurrency=settings.concurrency,
        per_host_delay=settings.per_host_delay,
        max_page_bytes=settings.max_page_bytes,
        total_timeout=settings.total_timeout,
    )
    sizes = ChunkSizes(settings.passage_words, settings.passage_max_words, settings.passage_min_words)
    try:
        async with make_client(
            user_agent=settings.user_agent,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_redirects=settings.max_redirects,
            concurrency=settings.concurrency,
            transport=transport,
        ) as client:
            pipeline = IngestPipeline(
                index,
                embedder,
                Crawler(client, limits),
                sizes=sizes,
                url_map=url_map,
                embed_batch_size=settings.embed_batch_size,
            )
            return await pipeline.run(seeds, budget=limits.max_pages, progress=progress)
    finally:
        index.close()
