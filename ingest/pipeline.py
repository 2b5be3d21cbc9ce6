"""The ingest pipeline: fetch -> extract -> chunk -> embed -> store, with a run summary.

Fetching is asynchronous and keeps going while extraction and embedding run in worker threads,
so network waits overlap with CPU work. Pages are written one at a time in their own transaction
(see ``indexes``), so a run that dies keeps every page it finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexes import Embedder, PageRecord, PassageIndex, PassageRecord
from ingest._exceptions import ExtractionError
from ingest.chunk import ChunkSizes, chunk
from ingest.extract import ExtractedPage, extract
from ingest.fetch import Crawler, FetchedPage, FetchFailure

ProgressCallback = Callable[["IngestProgress"], None]


@dataclass(frozen=True, slots=True)
class UrlMap:
    """Rewrites the fetched URL into the URL that citations link to (mirror -> public site)."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> UrlMap:
        """Each spec is ``FETCHED_PREFIX=PUBLIC_PREFIX``."""
        rules = []
        for spec in specs:
            source, sep, target = spec.partition("=")
            if not sep or not source or not target:
                raise ValueError(f"bad URL mapping {spec!r}: expected FETCHED_PREFIX=PUBLIC_PREFIX")
            rules.append((source, target))
        return cls(tuple(rules))

    def public(self, url: str) -> str:
        for source, target in self.rules:
            if url.startswith(source):
                return target + url[len(source) :]
        return url


@dataclass(frozen=True, slots=True)
class PageFailure:
    url: str
    stage: str
    """``fetch`` or ``extract``."""
    reason: str
    status: int | None = None


@dataclass(slots=True)
class IngestProgress:
    fetched: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    passages: int = 0
    budget: int = 0


@dataclass(slots=True)
class IngestSummary:
    index: str
    seeds: list[str]
    pages_fetched: int = 0
    pages_indexed: int = 0
    """Pages stored by this run (new, or changed since the last run)."""
    pages_unchanged: int = 0
    """Pages already stored with identical text: nothing re-embedded."""
    passages_added: int = 0
    failures: list[PageFailure] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    index_pages: int = 0
    index_passages: int = 0

    @property
    def pages_per_second(self) -> float:
        return self.pages_fetched / self.seconds if self.seconds else 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages_added / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "seeds": self.seeds,
            "pages_fetched": self.pages_fetched,
            "pages_indexed": self.pages_indexed,
            "pages_unchanged": self.pages_unchanged,
            "pages_failed": len(self.failures),
            "passages_added": self.passages_added,
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages_per_second, 2),
            "passages_per_second": round(self.passages_per_second, 2),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "index_pages": self.index_pages,
            "index_passages": self.index_passages,
            "failures": [
                {"url": f.url, "stage": f.stage, "reason": f.reason, "status": f.status} for f in self.failures
            ],
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    page: PageRecord
    passages: list[PassageRecord]
    embed_texts: list[str]


def embedding_text(title: str, heading: str, passage: str) -> str:
    """What the embedder reads for a passage: its page title and section give it context."""
    context = title if not heading or heading in passage else f"{title} — {heading}"
    return f"{context}\n{passage}"


class IngestPipeline:
    """Runs one ingest over seed URLs into one index."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        crawler: Crawler,
        *,
        sizes: ChunkSizes | None = None,
        url_map: UrlMap | None = None,
        embed_batch_passages: int = 64,
        embed_batch_size: int = 32,
        flush_every_pages: int = 50,
    ) -> None:
        index.check_embedder(embedder.model_name, embedder.dimension)
        self._index = index
        self._embedder = embedder
        self._crawler = crawler
        self._sizes = sizes or ChunkSizes()
        self._url_map = url_map or UrlMap()
        self._batch_passages = embed_batch_passages
        self._batch_size = embed_batch_size
        self._flush_every = flush_every_pages

    def _prepare(self, fetched: FetchedPage) -> _Prepared | None:
        """Extract and chunk one page; None when its stored copy is identical."""
        public_url = self._url_map.public(fetched.url)
        extracted: ExtractedPage = extract(fetched.html, public_url)
        if self._index.page_version(public_url) == (extracted.content_hash, self._sizes.signature):
            return None
        passages = chunk(extracted.text, extracted.headings, self._sizes)
        page = PageRecord(
            url=public_url,
            title=extracted.title,
            text=extracted.text,
            fetched_url=fetched.final_url,
            author=extracted.author,
            date=extracted.date,
            sitename=extracted.sitename,
            language=extracted.language,
            content_hash=extracted.content_hash,
            chunking=self._sizes.signature,
            fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        texts = [embedding_text(page.title, p.heading, p.text) for p in passages]
        return _Prepared(page, passages, texts)

    def _embed_and_store(self, batch: Sequence[_Prepared], summary: IngestSummary) -> None:
        texts = [t for item in batch for t in item.embed_texts]
        started = time.perf_counter()
        vectors = self._embedder.embed(texts, batch_size=self._batch_size)
        summary.stage_seconds["embed"] += time.perf_counter() - started
        started = time.perf_counter()
        offset = 0
        for item in batch:
            count = len(item.passages)
            self._index.upsert_page(item.page, item.passages, np.asarray(vectors[offset : offset + count]))
            offset += count
            summary.pages_indexed += 1
            summary.passages_added += count
        summary.stage_seconds["store"] += time.perf_counter() - started

    async def run(
        self, seeds: Sequence[str], *, budget: int = 0, progress: ProgressCallback | None = None
    ) -> IngestSummary:
        summary = IngestSummary(index=self._index.name, seeds=list(seeds))
        summary.stage_seconds = {"fetch": 0.0, "extract_chunk": 0.0, "embed": 0.0, "store": 0.0}
        state = IngestProgress(budget=budget)
        started = time.perf_counter()
        pending: list[_Prepared] = []
        pending_passages = 0
        since_flush = 0

        async def drain() -> None:
            nonlocal pending, pending_passages, since_flush
            if pending:
                batch, pending, pending_passages = pending, [], 0
                await asyncio.to_thread(self._embed_and_store, batch, summary)
                since_flush += len(batch)
                if since_flush >= self._flush_every:
                    await asyncio.to_thread(self._index.flush)
                    since_flush = 0

        def report() -> None:
            if progress:
                state.indexed, state.passages = summary.pages_indexed, summary.passages_added
                state.unchanged, state.failed = summary.pages_unchanged, len(summary.failures)
                progress(state)

        async for item in self._crawler.crawl(seeds):
            if isinstance(item, FetchFailure):
                summary.failures.append(PageFailure(item.url, "fetch", item.reason, item.status))
                report()
                continue
            summary.pages_fetched += 1
            state.fetched = summary.pages_fetched
            summary.stage_seconds["fetch"] += item.elapsed
            t0 = time.perf_counter()
            try:
                prepared = await asyncio.to_thread(self._prepare, item)
            except ExtractionError as exc:
                summary.failures.append(PageFailure(item.url, "extract", exc.reason, item.status))
                report()
                continue
            finally:
                summary.stage_seconds["extract_chunk"] += time.perf_counter() - t0
            if prepared is None:
                summary.pages_unchanged += 1
            elif prepared.passages:
                pending.append(prepared)
                pending_passages += len(prepared.passages)
                if pending_passages >= self._batch_passages:
                    await drain()
            report()
        await drain()
        manifest = await asyncio.to_thread(self._index.flush)
        summary.index_pages, summary.index_passages = manifest.pages, manifest.passages
        summary.seconds = time.perf_counter() - started
        report()
        return summary
