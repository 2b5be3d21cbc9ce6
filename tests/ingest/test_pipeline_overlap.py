"""The pipeline embeds one batch while it extracts the next: still bounded, journalled only once
committed, errors raised, and the same index as the serial pipeline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from indexes import HashEmbedder, PassageIndex, Vectors
from ingest import CrawlItem, CrawlJournal, FetchedPage, IngestPipeline, IngestProgress, IngestSummary

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
    pipeline = IngestPipeline(index, embedder, embed_batch_passages=PAGES_PER_BATCH, near_duplicates=False, **kwargs)
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
