"""The pipeline embeds one batch while it extracts the next: still bounded, journalled only once
committed, errors raised, and the same index as the serial pipeline."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from citeline.indexes import HashEmbedder, PassageIndex, Vectors
from citeline.ingest import (
    Crawler,
    CrawlItem,
    CrawlJournal,
    CrawlLimits,
    FetchedPage,
    IngestOptions,
    IngestPipeline,
    IngestProgress,
    IngestSummary,
    make_client,
)

PAGES_PER_BATCH = 4  # every page below is one passage, and a batch is this many passages


def page(n: int) -> FetchedPage:
    words = " ".join(f"w{n}x{i}" for i in range(40))
    html = f"<html><head><title>Page {n}</title></head><body><h1>Page {n}</h1><p>{words}.</p></body></html>"
    url = f"http://site.test/p{n}.html"
    return FetchedPage(url=url, final_url=url, status=200, html=html, headers={}, depth=0, elapsed=0.0)


class SlowEmbedder(HashEmbedder):
    """Takes ``delay`` seconds a call; counts calls at once, can be held or made to fail."""

    def __init__(self, delay: float = 0.0, fail_call: int | None = None) -> None:
        super().__init__(32)
        self.delay = delay
        self.fail_call = fail_call
        self.calls = 0
        self.running = 0
        self.most_running = 0
        self.release = threading.Event()
        self.release.set()
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        with self._lock:
            self.calls += 1
            call = self.calls
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            assert self.release.wait(10)
            time.sleep(self.delay)
            if call == self.fail_call:
                raise RuntimeError("embedder broke")
            return super().embed(texts, batch_size=batch_size)
        finally:
            with self._lock:
                self.running -= 1
            self.ended.set()


class CheckingJournal(CrawlJournal):
    """Records finished URLs, failing when one with passages is not yet stored."""

    def __init__(self, index: PassageIndex) -> None:
        super().__init__(index.path, {"test": True})
        self.index = index
        self.done: list[str] = []

    def finish_urls(self, urls: Iterable[str]) -> None:
        urls = list(urls)
        for url in urls:
            assert self.index.page(url) is not None, f"{url} finished before it was committed"
        self.done.extend(urls)
        super().finish_urls(urls)


class Source:
    """An async page source that records how far ahead of the committed pages it was read."""

    def __init__(self, index: PassageIndex, count: int) -> None:
        self.index = index
        self.count = count
        self.pulled = 0
        self.most_ahead = 0

    async def __aiter__(self) -> AsyncIterator[CrawlItem]:
        for n in range(self.count):
            await asyncio.sleep(0)
            self.pulled += 1
            self.most_ahead = max(self.most_ahead, self.pulled - self.index.page_count())
            yield page(n)


def make_index(tmp_path: Path) -> PassageIndex:
    return PassageIndex.create_or_open(tmp_path, "t", embedding_model="hash-bow-32", dimension=32)


def make_pipeline(index: PassageIndex, embedder: SlowEmbedder, overlap: bool = True, **kwargs: Any) -> IngestPipeline:
    pipeline = IngestPipeline(
        index, embedder, IngestOptions(near_duplicates=False), embed_batch_passages=PAGES_PER_BATCH, **kwargs
    )
    pipeline._overlap = overlap  # the serial pipeline, for comparison
    return pipeline


async def test_extraction_goes_on_while_a_batch_is_embedded(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    embedder = SlowEmbedder()
    embedder.release.clear()
    source = Source(index, 40)
    task = asyncio.create_task(make_pipeline(index, embedder).ingest(source))
    deadline = time.monotonic() + 10
    while source.pulled < 2 * PAGES_PER_BATCH and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert embedder.calls == 1, "the first batch is being embedded..."
    assert source.pulled >= 2 * PAGES_PER_BATCH, "...while the next one is fetched and extracted"
    embedder.release.set()
    summary = await task
    assert summary.pages_new == 40
    assert summary.stage_seconds["embed"] > 0


async def test_one_batch_in_flight_and_bounded_read_ahead(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    embedder = SlowEmbedder(delay=0.02)
    source = Source(index, 48)
    summary = await make_pipeline(index, embedder).ingest(source)
    assert summary.pages_new == 48
    assert embedder.most_running == 1
    # the batch in flight, the batch being gathered and the page in hand; the source had 48
    assert source.most_ahead <= 2 * PAGES_PER_BATCH + 1


async def test_pages_are_journalled_only_once_committed(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    journal = CheckingJournal(index)
    embedder = SlowEmbedder(delay=0.01)
    summary = await make_pipeline(index, embedder).ingest(Source(index, 30), journal=journal)
    assert summary.pages_new == 30
    assert sorted(journal.done) == sorted(page(n).url for n in range(30))
    journal.close()


async def test_an_embedder_error_is_raised_after_the_batch_in_flight(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    journal = CheckingJournal(index)
    embedder = SlowEmbedder(delay=0.01, fail_call=2)
    with pytest.raises(RuntimeError, match="embedder broke"):
        await make_pipeline(index, embedder).ingest(Source(index, 40), journal=journal)
    assert embedder.running == 0
    stored = set(index.page_urls())
    assert stored == {page(n).url for n in range(PAGES_PER_BATCH)}, "the first batch only"
    assert set(journal.done) == stored
    assert index.check_integrity() == []
    journal.close()


async def test_a_cancelled_run_waits_for_the_batch_in_flight(tmp_path: Path) -> None:
    index = make_index(tmp_path)
    journal = CheckingJournal(index)
    embedder = SlowEmbedder()
    embedder.release.clear()

    def stop_once_embedding(state: IngestProgress) -> None:
        if embedder.calls and state.fetched > PAGES_PER_BATCH:
            threading.Timer(0.2, embedder.release.set).start()
            raise asyncio.CancelledError  # the process is stopping

    with pytest.raises(asyncio.CancelledError):
        await make_pipeline(index, embedder).ingest(Source(index, 40), journal=journal, progress=stop_once_embedding)
    assert embedder.ended.is_set(), "the caller may close the index now: nothing writes to it"
    assert embedder.running == 0
    assert sorted(journal.done) == sorted(index.page_urls()) == sorted(page(n).url for n in range(PAGES_PER_BATCH))
    journal.close()


async def test_same_index_and_summary_as_the_serial_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[tuple[dict[str, Any], list[str], int, int]] = []
    for overlap in (False, True):
        index = PassageIndex.create_or_open(tmp_path / str(overlap), "t", embedding_model="hash-bow-32", dimension=32)
        flushes = 0
        flush = index.flush

        def counted(flush: Any = flush) -> Any:
            nonlocal flushes
            flushes += 1
            return flush()

        monkeypatch.setattr(index, "flush", counted)
        pages = [page(n) for n in range(37)]

        async def source(pages: list[FetchedPage] = pages) -> AsyncIterator[CrawlItem]:
            for item in pages:
                yield item

        pipeline = make_pipeline(index, SlowEmbedder(delay=0.005), overlap=overlap, flush_every_pages=8)
        summary = await pipeline.ingest(source(), summary=IngestSummary(index="t", seeds=[]))
        counts = {k: v for k, v in summary.to_json().items() if k not in ("seconds", "stage_seconds")}
        counts.pop("pages_per_second")
        counts.pop("passages_per_second")
        results.append((counts, sorted(index.page_urls()), index.manifest().passages, flushes))
        assert index.check_integrity() == []
    assert results[0] == results[1]
    assert results[1][3] == 37 // 8 + 1, "a flush every 8 pages (two batches), and one at the end"


class ThreadRecordingJournal(CrawlJournal):
    """Records the thread of every journal write (each one a commit that fsyncs)."""

    def __init__(self, index: PassageIndex) -> None:
        super().__init__(index.path, {"test": "threads"})
        self.threads: list[int] = []

    def finish_urls(self, urls: Iterable[str]) -> None:
        self.threads.append(threading.get_ident())
        super().finish_urls(urls)

    def complete(self) -> None:
        self.threads.append(threading.get_ident())
        super().complete()


async def test_journal_commits_run_off_the_event_loop(tmp_path: Path) -> None:
    """Each journal commit fsyncs; on the loop, it stalled every fetch and timer while the disk synced."""
    index = make_index(tmp_path)
    journal = ThreadRecordingJournal(index)

    class Crawler:
        def crawl(self, seeds: Sequence[str], **_: Any) -> AsyncIterator[CrawlItem]:
            return Source(index, 12).__aiter__()

    summary = await make_pipeline(index, SlowEmbedder()).run(Crawler(), ["http://site.test/"],  # type: ignore[arg-type]
                                                             journal=journal)  # fmt: skip
    assert summary.pages_new == 12
    loop_thread = threading.get_ident()
    assert journal.threads, "the journal was written"
    assert loop_thread not in journal.threads
    journal.close()


class LinkJournal(CrawlJournal):
    """Records the thread of every call the crawler makes (each write a commit that fsyncs, each
    read behind the lock such a commit holds), and checks at each finish that the page's links are
    journalled already."""

    def __init__(self, index: PassageIndex) -> None:
        super().__init__(index.path, {"test": "crawler threads"})
        self.threads: dict[str, set[int]] = {"queue": set(), "save_links": set(), "links": set()}

    def queue(self, items: Sequence[tuple[str, int]]) -> None:
        self.threads["queue"].add(threading.get_ident())
        super().queue(items)

    def save_links(self, url: str, links: Sequence[str]) -> None:
        self.threads["save_links"].add(threading.get_ident())
        super().save_links(url, links)

    def links(self, url: str) -> list[str] | None:
        self.threads["links"].add(threading.get_ident())
        return super().links(url)

    def finish_urls(self, urls: Iterable[str]) -> None:
        urls = list(urls)
        with self._lock:
            frontier = {row[0] for row in self._conn.execute("SELECT url FROM frontier WHERE job=?", (self.key,))}
            saved = {
                url: self._conn.execute("SELECT links FROM outlinks WHERE url=?", (url,)).fetchone() for url in urls
            }
        for url in urls:
            assert saved[url] is not None, f"{url} finished before its links were saved"
            missing = {link for link in json.loads(saved[url][0]) if link.startswith(SITE)} - frontier
            assert not missing, f"{url} finished before the links it led to were queued: {missing}"
        super().finish_urls(urls)


SITE = "http://site.test/"


def site_page(path: str) -> str:
    """A page of the three-level site: / links to c0..c3, each ci to ci-0..ci-2."""
    name = path.strip("/").removesuffix(".html") or "root"
    if name == "root":
        children = [f"c{i}" for i in range(4)]
    else:
        children = [f"{name}-{i}" for i in range(3)] if "-" not in name else []
    words = " ".join(f"{name}w{i}" for i in range(40))
    links = "".join(f'<a href="/{child}.html">{child}</a> ' for child in children)
    return f"<html><head><title>{name}</title></head><body><h1>{name}</h1><p>{words}.</p>{links}</body></html>"


def site_response(request: httpx.Request) -> httpx.Response:
    etag = f'"{request.url.path}"'
    if request.headers.get("if-none-match") == etag:
        return httpx.Response(304, headers={"ETag": etag})
    return httpx.Response(200, html=site_page(request.url.path), headers={"ETag": etag})


async def test_crawl_checkpoint_writes_and_reads_run_off_the_event_loop(tmp_path: Path) -> None:
    """The crawler's journal calls (queueing found links, saving a page's links, reading them back
    for a conditional GET or a 304) commit and fsync, or wait on the lock a commit holds: on the
    loop they stalled every fetch and timer. A page's links are still queued before it finishes."""
    index = make_index(tmp_path)
    journal = LinkJournal(index)
    pipeline = make_pipeline(index, SlowEmbedder())
    loop_thread = threading.get_ident()
    stored: list[tuple[int, int]] = []
    for _ in range(2):  # the second run gets a 304 for every page and follows the saved links
        client = make_client(user_agent="citeline-test", connect_timeout=1, read_timeout=1, max_redirects=3,
                             concurrency=4, transport=httpx.MockTransport(site_response))  # fmt: skip
        async with client:
            crawler = Crawler(client, CrawlLimits(concurrency=4), validators=pipeline.validators, link_store=journal)
            summary = await pipeline.run(crawler, [SITE], journal=journal)
        stored.append((summary.pages_new, summary.pages_unchanged))
    assert stored == [(17, 0), (0, 17)]
    for call, threads in journal.threads.items():
        assert threads, f"the crawler never called {call}"
        assert loop_thread not in threads, f"{call} ran on the event loop"
    journal.close()
