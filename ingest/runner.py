"""Wire settings, embedder, index and HTTP client into one ingest run.

Inputs: seed URLs (crawled within a scope), sitemaps and feeds (their URLs are fetched, not
followed further), robots.txt ``Sitemap:`` lines of the seeds' hosts, a local directory of HTML
files, WARC files. Everything fetched goes through one client: SSRF guard, robots.txt, per-host
pacing and back-off apply to sitemaps and feeds as much as to pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from citeline.indexes import Embedder, PassageIndex
from citeline.ingest._settings import IngestSettings
from citeline.ingest._wiring import settings_client, settings_limits, settings_politeness
from citeline.ingest.directories import directory_pages
from citeline.ingest.engine import Engine
from citeline.ingest.feeds import feed_urls
from citeline.ingest.fetch import Crawler, CrawlItem, FetchedPage, FetchFailure
from citeline.ingest.journal import CrawlJournal
from citeline.ingest.options import IngestOptions
from citeline.ingest.pipeline import IngestPipeline
from citeline.ingest.robots import RobotsCache
from citeline.ingest.safety import AddressPolicy
from citeline.ingest.scope import CrawlScope, canonical
from citeline.ingest.sitemaps import sitemap_urls
from citeline.ingest.streams import chain, iterate
from citeline.ingest.summary import IngestSummary, ProgressCallback
from citeline.ingest.warc import WarcRecorder, warc_pages


@dataclass(frozen=True, slots=True)
class IngestInputs:
    """What one ingest reads."""

    seeds: tuple[str, ...] = ()
    """Start URLs, crawled within ``scope`` up to ``max_depth`` links away."""
    sitemaps: tuple[str, ...] = ()
    """Sitemap (or sitemap index, gzip, plain text) URLs; each listed URL is fetched, not followed."""
    feeds: tuple[str, ...] = ()
    """RSS/Atom feed URLs; each item's link is fetched, not followed."""
    robots_sitemaps: bool = False
    """Also read the ``Sitemap:`` lines of the seeds' robots.txt."""
    directory: Path | None = None
    """A local directory of HTML, PDF, Markdown and text files..."""
    base_url: str = ""
    """...recorded under this URL prefix (provenance for citations)."""
    warcs: tuple[Path, ...] = ()
    """WARC files whose HTML responses are ingested as recorded."""
    scope: CrawlScope = field(default_factory=CrawlScope)

    def spec(self) -> dict[str, object]:
        """What identifies the job for its checkpoint."""
        return {
            "seeds": sorted(canonical(s) for s in self.seeds),
            "sitemaps": sorted(self.sitemaps),
            "feeds": sorted(self.feeds),
            "robots_sitemaps": self.robots_sitemaps,
            "scope": [self.scope.mode, sorted(self.scope.allow), sorted(self.scope.deny)],
        }


async def _listed_urls(
    client: httpx.AsyncClient, robots: RobotsCache | None, inputs: IngestInputs, max_urls: int
) -> tuple[list[str], list[FetchFailure], int]:
    """The URLs sitemaps and feeds list, in order, de-duplicated, at most ``max_urls`` of them;
    their failures; and how many more were listed than the cap let through (a lower bound: each
    sitemap or feed is read only one URL past the cap)."""
    sitemaps = list(inputs.sitemaps)
    if inputs.robots_sitemaps and robots is not None:
        for seed in inputs.seeds:
            sitemaps.extend(s for s in await robots.sitemaps(seed) if s not in sitemaps)
    urls: list[str] = []
    failures: list[FetchFailure] = []
    for sitemap in sitemaps:
        try:
            urls.extend(await sitemap_urls(client, sitemap, max_urls=max_urls + 1))
        except Exception as exc:  # one bad sitemap is reported, the others still count
            failures.append(FetchFailure(sitemap, f"sitemap: {getattr(exc, 'reason', exc)}"))
    for feed in inputs.feeds:
        try:
            urls.extend(await feed_urls(client, feed, max_urls=max_urls + 1))
        except Exception as exc:
            failures.append(FetchFailure(feed, f"feed: {getattr(exc, 'reason', exc)}"))
    unique = list(dict.fromkeys(canonical(u) for u in urls))
    return unique[:max_urls], failures, max(0, len(unique) - max_urls)


async def run_ingest(
    seeds: Sequence[str] = (),
    *,
    settings: IngestSettings,
    embedder: Embedder,
    inputs: IngestInputs | None = None,
    options: IngestOptions | None = None,
    progress: ProgressCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    engine: Engine | None = None,
) -> IngestSummary:
    """Ingest ``inputs`` (or just ``seeds``) into the index ``options`` name (created on first use).

    ``engine`` says where extraction and embedding run (``ingest.ray_engine`` passes a Ray one);
    the crawl and the pipeline around it are the same for every engine."""
    inputs = inputs or IngestInputs(seeds=tuple(seeds))
    options = options or IngestOptions()
    max_pages = options.max_pages
    index = PassageIndex.create_or_open(
        settings.data_dir,
        options.index_name or settings.index,
        embedding_model=embedder.model_name,
        dimension=embedder.dimension,
        vector_backend=settings.vector_backend,
        qdrant_url=settings.qdrant_url,
    )
    journal: CrawlJournal | None = None
    recorder: WarcRecorder | None = None

    def tap(item: CrawlItem) -> None:
        if recorder is not None and isinstance(item, FetchedPage):
            recorder.record(item)

    # Everything after the index is opened sits inside the try: a bad setting, a journal that will
    # not open or a WARC path that cannot be written must not leave the index (its SQLite
    # connection, an embedded Qdrant folder's lock) or the journal open behind the error.
    try:
        # A crawl needs a cap (a site can be endless); a directory or WARC is already a finite list,
        # so only a cap the caller asked for stops it.
        budget = max_pages or settings.max_pages
        policy = AddressPolicy.from_strings(settings.allow_hosts)
        journal = CrawlJournal(index.path, {"index": index.name, **inputs.spec()}) if options.resume else None
        recorder = WarcRecorder(options.record_warc).__enter__() if options.record_warc is not None else None
        async with settings_client(settings, policy, transport=transport) as client:
            polite = settings_politeness(settings, client)
            robots = polite.robots
            pipeline = IngestPipeline(
                index,
                embedder,
                options,
                sizes=settings.chunk_sizes(),
                pdf_limits=settings.pdf_limits(),
                embed_batch_size=settings.embed_batch_size,
                embed_batch_passages=settings.embed_batch_passages,
                engine=engine,
            )
            listed, listing_failures, listed_over_cap = await _listed_urls(client, robots, inputs, budget)
            crawler = Crawler(
                client,
                settings_limits(settings, max_pages=budget, max_depth=options.max_depth),
                scope=inputs.scope,
                robots=robots,
                tdm=polite.tdm,
                pacer=polite.pacer,
                policy=policy,
                validators=pipeline.validators if settings.conditional_get else None,
                link_store=journal,
            )
            summary = IngestSummary(index=index.name, seeds=[*inputs.seeds, *inputs.sitemaps, *inputs.feeds])
            crawls = bool(inputs.seeds or listed)
            summary.page_cap = budget if crawls or max_pages else None

            def left_over(kind: str) -> Callable[[int], None]:
                def count(left: int) -> None:
                    if left:
                        summary.left_by_cap[kind] = summary.left_by_cap.get(kind, 0) + left

                return count

            offline: list[AsyncIterator[CrawlItem]] = []
            if inputs.directory is not None:
                pages = directory_pages(
                    inputs.directory,
                    inputs.base_url,
                    max_pages=max_pages,
                    max_bytes=settings.max_page_bytes,
                    on_cap=left_over("files"),
                )
                offline.append(iterate(pages))
            offline.extend(
                iterate(warc_pages(path, max_pages=max_pages, on_cap=left_over("warc_records")))
                for path in inputs.warcs
            )
            if offline:
                await pipeline.ingest(chain(iterate(listing_failures), *offline), summary=summary, progress=progress)
                listing_failures = []
            if inputs.seeds or listed:
                await pipeline.run(
                    crawler,
                    inputs.seeds,
                    listed=listed,
                    summary=summary,
                    before=iterate(listing_failures),
                    budget=budget,
                    progress=progress,
                    journal=journal,
                    tap=tap,
                )
            elif listing_failures:
                await pipeline.ingest(iterate(listing_failures), summary=summary, progress=progress)
            left_over("urls")(len(crawler.left_by_cap) + listed_over_cap)
            return summary
    finally:
        if recorder is not None:
            recorder.close()
        if journal is not None:
            journal.close()
        index.close()
