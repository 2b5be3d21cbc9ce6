"""The ingest pipeline: fetch -> extract -> dedup -> chunk -> embed -> store, with a run summary.

Fetching is asynchronous and keeps going while extraction and embedding run elsewhere (worker
threads, or Ray: the :class:`~ingest.engine.Engine` decides; this loop and its decisions are the same
for both), and a batch of passages is embedded and stored while the next pages are extracted and
chunked, so the embedder, by far the slowest stage, is seldom idle. Pages are written one at a time in their
own transaction (see ``indexes``), so a run that dies keeps every page it finished, and a
:class:`CrawlJournal` lets the same command resume the job.

Pages come from the crawler or from any other source of :data:`CrawlItem` (a directory, a WARC).
What happens to each:

- fetched, text unchanged (same content hash and chunking), or ``304 Not Modified``: nothing to do;
- fetched, text identical to another stored page, or a near duplicate of one (SimHash): recorded
  as an alias of that page, not indexed twice;
- fetched, new or changed: stored with its provenance (status, ETag, Last-Modified, license...);
- ``404``/``410``, or the owner opted out: a stored copy is removed (or kept and marked gone);
- any other failure: counted by kind and listed, and the run goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from citeline.indexes import (
    AliasKind,
    Embedder,
    PageRecord,
    PassageIndex,
    PassageRecord,
    embedding_text,
    hamming_distance,
)
from citeline.ingest.chunk import ChunkSizes
from citeline.ingest.dedup import NEAR_DISTANCE
from citeline.ingest.engine import Engine, LocalEngine, PageResult, ProcessedPage
from citeline.ingest.extract import ExtractedPage
from citeline.ingest.fetch import Crawler, CrawlItem, FetchedPage, FetchFailure, NotModified
from citeline.ingest.journal import CrawlJournal, JobState
from citeline.ingest.options import IngestOptions
from citeline.ingest.pdf import PdfLimits
from citeline.ingest.streams import aclose, chain
from citeline.ingest.summary import IngestProgress, IngestSummary, PageFailure, ProgressCallback


@dataclass(frozen=True, slots=True)
class _Prepared:
    page: PageRecord
    passages: list[PassageRecord]
    embed_texts: list[str]
    replaces: bool
    """A page was stored under this URL before (with other text)."""
    source_url: str
    """The URL as the crawl requested it (the checkpoint's key)."""


@dataclass(frozen=True, slots=True)
class _Duplicate:
    url: str
    of: str
    kind: AliasKind


def page_record(
    fetched: FetchedPage, extracted: ExtractedPage, *, url: str, chunking: str, simhash: int | None = None
) -> PageRecord:
    """A fetched page as stored: its text, metadata and provenance (status, validators, fetch time)."""
    headers = fetched.headers
    return PageRecord(
        url=url,
        title=extracted.title,
        text=extracted.text,
        fetched_url=fetched.final_url,
        author=extracted.author,
        date=extracted.date,
        sitename=extracted.sitename,
        language=extracted.language,
        content_hash=extracted.content_hash,
        chunking=chunking,
        fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        status=fetched.status,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        license=extracted.license,
        simhash=simhash,
    )


class IngestPipeline:
    """Runs one ingest into one index: from a crawl (:meth:`run`) or any page source (:meth:`ingest`)."""

    _overlap: bool = True
    """Embed and store a batch while the next one is extracted; off only to measure the serial
    pipeline against it (``bench/ingest.py``)."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        options: IngestOptions | None = None,
        *,
        sizes: ChunkSizes | None = None,
        embed_batch_passages: int = 64,
        embed_batch_size: int = 32,
        flush_every_pages: int = 50,
        engine: Engine | None = None,
        pdf_limits: PdfLimits | None = None,
    ) -> None:
        """``options`` (its ``url_map``, ``keep_gone`` and ``near_duplicates``) say what to keep;
        ``sizes``, ``pdf_limits`` and the batch sizes come from the settings; ``engine`` says where extraction and
        embedding run (:class:`~ingest.engine.LocalEngine` when None)."""
        index.check_embedder(embedder.model_name, embedder.dimension)
        options = options or IngestOptions()
        self._index = index
        self._embedder = embedder
        self._engine: Engine = engine or LocalEngine()
        self._sizes = sizes or ChunkSizes()
        self._pdf_limits = pdf_limits or PdfLimits()
        self._url_map = options.url_map
        self._batch_passages = self._engine.batch_passages or embed_batch_passages
        self._batch_size = embed_batch_size
        self._flush_every = flush_every_pages
        self._keep_gone = options.keep_gone
        self._near_duplicates = options.near_duplicates
        # Pages prepared in this run but maybe not stored yet: duplicates among them count too.
        self._run_hashes: dict[str, str] = {}
        self._run_simhashes: list[tuple[int, str]] = []

    def validators(self, fetched_url: str) -> tuple[str | None, str | None] | None:
        """(ETag, Last-Modified) stored for a fetched URL, for a conditional GET."""
        return self._index.validators(self._url_map.public(fetched_url))

    def _duplicate_of(self, url: str, content_hash: str, fingerprint: int | None) -> _Duplicate | None:
        other = self._run_hashes.get(content_hash) or self._index.page_with_hash(content_hash, exclude_url=url)
        if other and other != url:
            return _Duplicate(url, other, "exact")
        if fingerprint is None or not self._near_duplicates:
            return None
        for seen, seen_url in self._run_simhashes:
            if seen_url != url and hamming_distance(seen, fingerprint) <= NEAR_DISTANCE:
                return _Duplicate(url, seen_url, "near")
        near = self._index.near_duplicate(fingerprint, max_distance=NEAR_DISTANCE, exclude_url=url)
        return _Duplicate(url, near, "near") if near else None

    def _decide_page(self, fetched: FetchedPage, processed: ProcessedPage) -> _Prepared | _Duplicate | None:
        """What to do with an extracted page: nothing (stored unchanged), record a duplicate, or store
        it. Its passages and fingerprint are asked for only when needed. Runs in a worker thread."""
        extracted, passages, fingerprint = processed.page, processed.passages, processed.fingerprint
        public_url = self._url_map.public(fetched.url)
        stored = self._index.page_version(public_url)
        if stored == (extracted.content_hash, self._sizes.signature):
            return None
        page_fingerprint = fingerprint()
        duplicate = self._duplicate_of(public_url, extracted.content_hash, page_fingerprint)
        if duplicate is not None:
            return duplicate
        self._run_hashes.setdefault(extracted.content_hash, public_url)
        if page_fingerprint is not None:
            self._run_simhashes.append((page_fingerprint, public_url))
        page_passages = list(passages())
        page = page_record(fetched, extracted, url=public_url, chunking=self._sizes.signature, simhash=page_fingerprint)
        texts = [embedding_text(page.title, p.heading, p.text) for p in page_passages]
        return _Prepared(page, page_passages, texts, replaces=stored is not None, source_url=fetched.url)

    def _embed_and_store(self, batch: list[_Prepared], summary: IngestSummary, *, flush: bool) -> list[_Prepared]:
        """Embed and store one batch (then persist the index when ``flush``); runs in a worker thread."""
        texts = [t for item in batch for t in item.embed_texts]
        started = time.perf_counter()
        vectors = self._engine.embed(self._embedder, texts, self._batch_size)
        summary.stage_seconds["embed"] += time.perf_counter() - started
        started = time.perf_counter()
        offset = 0
        for item in batch:
            count = len(item.passages)
            self._index.upsert_page(item.page, item.passages, np.asarray(vectors[offset : offset + count]))
            offset += count
            if item.replaces:
                summary.pages_updated += 1
            else:
                summary.pages_new += 1
            summary.passages_added += count
        if flush:
            self._index.flush()
        summary.stage_seconds["store"] += time.perf_counter() - started
        return batch

    def _drop_stored(self, fetched_url: str, summary: IngestSummary) -> None:
        """The source says the page is gone or must not be kept: remove (or mark) the stored copy."""
        public_url = self._url_map.public(fetched_url)
        if self._index.page_version(public_url) is None:
            return
        if self._keep_gone:
            self._index.mark_gone(public_url)
        else:
            self._index.remove_page(public_url)
        summary.pages_removed += 1

    async def run(
        self,
        crawler: Crawler,
        seeds: Sequence[str],
        *,
        listed: Sequence[str] = (),
        summary: IngestSummary | None = None,
        before: AsyncIterable[CrawlItem] | None = None,
        budget: int = 0,
        progress: ProgressCallback | None = None,
        journal: CrawlJournal | None = None,
        tap: Callable[[CrawlItem], None] | None = None,
    ) -> IngestSummary:
        """Crawl ``seeds`` and fetch ``listed`` (after the items of ``before``, if any) and ingest
        what comes.

        With a ``journal``, an interrupted run of the same job is resumed: its finished URLs are
        not fetched again and its queued ones come first. A run that ends deletes the checkpoint.
        """
        summary = summary or IngestSummary(index=self._index.name, seeds=list(seeds))
        state = await asyncio.to_thread(journal.open) if journal is not None else None
        done: list[str] = []
        queued: list[tuple[str, int]] = []
        if journal is not None and state is not None and state.resumed:
            done, queued = await asyncio.to_thread(self._settle, journal, state)
            summary.resumed, summary.resumed_done = True, len(done)
        items = crawler.crawl(
            seeds,
            listed=listed,
            done=done,
            queued=queued,
            on_discovered=journal.queue if journal is not None else None,
        )
        source = chain(before, items) if before is not None else items
        await self.ingest(source, summary=summary, budget=budget, progress=progress, journal=journal, tap=tap)
        if journal is not None:
            await asyncio.to_thread(journal.complete)
        return summary

    def _settle(self, journal: CrawlJournal, state: JobState) -> tuple[list[str], list[tuple[str, int]]]:
        """A queued URL whose page was stored after the job started was finished by the killed run
        (it died before journalling it): count it done rather than fetch it again."""
        done, queued = list(state.done), []
        for url, depth in state.queued:
            page = self._index.page(self._url_map.public(url))
            if page is not None and page.fetched_at >= state.started_at:
                done.append(url)
            else:
                queued.append((url, depth))
        journal.finish_urls(done[len(state.done) :])
        return done, queued

    async def ingest(
        self,
        items: AsyncIterable[CrawlItem],
        *,
        summary: IngestSummary | None = None,
        budget: int = 0,
        progress: ProgressCallback | None = None,
        journal: CrawlJournal | None = None,
        tap: Callable[[CrawlItem], None] | None = None,
    ) -> IngestSummary:
        """Ingest every page ``items`` yields; failures are counted and listed, never raised.

        ``tap`` sees every item first (a WARC recorder of the crawl, for instance).

        Each page is handed to the engine as it arrives; up to ``engine.lookahead`` pages are in its
        hands at once, and their results are decided in arrival order. One batch at a time is
        embedded and stored in a worker thread while the loop goes on fetching, extracting and
        chunking the next; the loop waits for it only when the next batch is ready, so at most two
        batches are held. A page is finished in the ``journal`` only once its batch is committed. An
        error of the embedder or the index is raised (after the batch in flight, if any, has
        ended): it is not a page's failure.
        """
        summary = summary or IngestSummary(index=self._index.name, seeds=[])
        state = IngestProgress(budget=budget)
        started = time.perf_counter()
        pending: list[_Prepared] = []
        pending_passages = 0
        since_flush = 0
        in_flight: asyncio.Future[list[_Prepared]] | None = None
        processing: deque[tuple[FetchedPage, Awaitable[PageResult]]] = deque()

        async def finished(urls: list[str]) -> None:
            # A journal commit fsyncs (synchronous=FULL): on the loop it would stall every fetch.
            if journal is not None and urls:
                await asyncio.to_thread(journal.finish_urls, urls)

        async def settle() -> None:
            """Wait for the batch in flight; only then, with its pages committed, are they finished."""
            nonlocal in_flight
            if in_flight is not None:
                # Shielded: cancelling this loop must not cancel the batch's task, which would end
                # at once while its thread still writes to the index.
                batch, in_flight = await asyncio.shield(in_flight), None
                await finished([item.source_url for item in batch])

        async def drain() -> None:
            nonlocal pending, pending_passages, since_flush, in_flight
            await settle()
            if pending:
                batch, pending, pending_passages = pending, [], 0
                since_flush += len(batch)
                flush = since_flush >= self._flush_every
                since_flush = 0 if flush else since_flush
                in_flight = asyncio.ensure_future(asyncio.to_thread(self._embed_and_store, batch, summary, flush=flush))
                if not self._overlap:
                    await settle()

        def report() -> None:
            if progress:
                state.indexed, state.passages = summary.pages_indexed, summary.passages_added
                state.unchanged, state.failed = summary.pages_unchanged, len(summary.failures)
                progress(state)

        async def decide_oldest() -> None:
            """Await the oldest page the engine holds, decide what it is, and act on it."""
            nonlocal pending_passages
            item, result = processing.popleft()
            t0 = time.perf_counter()
            try:
                processed = await result
                prepared = (
                    None if isinstance(processed, str) else await asyncio.to_thread(self._decide_page, item, processed)
                )
            finally:
                summary.stage_seconds["extract_chunk"] += time.perf_counter() - t0
            if isinstance(processed, str):  # the extraction failed: the page's failure
                summary.failures.append(PageFailure(item.url, "extract", processed, item.status))
                summary.skipped["error"] += 1
                await finished([item.url])
            elif prepared is None:
                summary.pages_unchanged += 1
                await finished([item.url])
            elif isinstance(prepared, _Duplicate):
                await asyncio.to_thread(self._record_duplicate, prepared)
                summary.duplicates += 1
                await finished([item.url])
            elif prepared.passages:
                pending.append(prepared)
                pending_passages += len(prepared.passages)
                if pending_passages >= self._batch_passages:
                    await drain()
            else:
                await finished([item.url])

        source = aiter(items)
        try:
            while True:
                if in_flight is not None and in_flight.done():
                    await settle()  # journal its pages now, and fail fast on an embedder error
                t0 = time.perf_counter()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    break
                finally:
                    summary.stage_seconds["fetch_wait"] += time.perf_counter() - t0
                if tap is not None:
                    tap(item)
                if isinstance(item, FetchFailure):
                    await self._failed(item, summary)
                    await finished([item.url])
                    report()
                    continue
                if isinstance(item, NotModified):
                    summary.pages_unchanged += 1
                    summary.pages_not_modified += 1
                    summary.stage_seconds["fetch"] += item.elapsed
                    await asyncio.to_thread(self._index.mark_fetched, self._url_map.public(item.url), status=304)
                    await finished([item.url])
                    report()
                    continue
                summary.pages_fetched += 1
                state.fetched = summary.pages_fetched
                summary.stage_seconds["fetch"] += item.elapsed
                processing.append(
                    (item, self._engine.process(item, self._url_map.public(item.url), self._sizes, self._pdf_limits))
                )
                while len(processing) >= self._engine.lookahead:
                    await decide_oldest()
                report()
            while processing:
                await decide_oldest()
                report()
            await drain()
            await settle()
        finally:
            for _, result in processing:
                # Results never awaited (the loop failed): close them rather than leave them to warn.
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if in_flight is not None:
                # The loop failed or was cancelled. A thread cannot be stopped: let it end before the
                # caller closes the index under it, and journal its pages if they were committed.
                await asyncio.wait([in_flight])
                if not in_flight.cancelled() and in_flight.exception() is None:
                    await finished([item.source_url for item in in_flight.result()])
            # A source left early (the loop failed) still holds what it reads from: a WARC or a
            # directory walk, the crawler's workers. Closing it now releases them, not the GC later.
            await aclose(source)
        manifest = await asyncio.to_thread(self._index.flush)
        summary.index_pages, summary.index_passages = manifest.pages, manifest.passages
        summary.seconds += time.perf_counter() - started
        report()
        return summary

    def _record_duplicate(self, duplicate: _Duplicate) -> None:
        if self._index.page_version(duplicate.url) is not None:
            self._index.remove_page(duplicate.url)  # it was a page of its own; now it repeats another
        self._index.add_alias(duplicate.url, duplicate.of, duplicate.kind)

    async def _failed(self, failure: FetchFailure, summary: IngestSummary) -> None:
        summary.failures.append(PageFailure(failure.url, "fetch", failure.reason, failure.status, failure.kind))
        if failure.kind == "gone":
            summary.pages_gone += 1
            await asyncio.to_thread(self._drop_stored, failure.url, summary)
            return
        summary.skipped[failure.kind] += 1
        if failure.kind == "opt_out":
            await asyncio.to_thread(self._drop_stored, failure.url, summary)
