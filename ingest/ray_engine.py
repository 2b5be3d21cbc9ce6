"""The Ray engine of ``citeline ingest --engine ray``: the same index as the local engine, with the
CPU work spread over a Ray cluster.

The crawl (frontier, robots.txt, politeness, SSRF guard) stays in the driver: it is I/O bound and
stateful. Each fetched page is extracted and chunked by a Ray task as soon as it arrives; the
driver then decides, in crawl order, what is new, unchanged or a duplicate (that needs the index),
and the passages of a window of pages are embedded by a Ray Data actor pool, each actor loading the
model once. The driver writes the pages in order, one transaction per page, exactly as the local
engine does.

Ray is an optional dependency: ``pip install 'citeline[ray]'``.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from indexes import Embedder, PassageIndex, PassageRecord
from ingest._exceptions import ExtractionError, IngestError
from ingest._settings import IngestSettings
from ingest.chunk import ChunkSizes, chunk
from ingest.dedup import simhash
from ingest.extract import ExtractedPage, extract
from ingest.fetch import CrawlItem, FetchedPage, FetchFailure, NotModified
from ingest.journal import CrawlJournal
from ingest.pipeline import (
    IngestPipeline,
    IngestProgress,
    IngestSummary,
    PageFailure,
    ProgressCallback,
    UrlMap,
    _Duplicate,
    _Prepared,
)
from ingest.runner import IngestInputs, run_ingest

EmbedderFactory = Callable[[], Embedder]
"""Builds the embedder inside each actor; it must pickle (a module-level function or a partial)."""

RAY_MISSING = "the Ray engine needs Ray: pip install 'citeline[ray]'"


class RayUnavailableError(IngestError):
    """``--engine ray`` was asked for but Ray is not installed."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`RayUnavailableError` that says how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise RayUnavailableError(RAY_MISSING) from exc


@dataclass(frozen=True, slots=True)
class _Extracted:
    page: ExtractedPage
    passages: list[PassageRecord]
    fingerprint: int | None


def _extract_and_chunk(html: str, public_url: str, sizes: ChunkSizes) -> _Extracted | str:
    """One page's CPU work, run as a Ray task: the extraction error's reason rather than a raise,
    so a bad page is the page's failure, not the task's."""
    try:
        extracted = extract(html, public_url)
    except ExtractionError as exc:
        return exc.reason
    return _Extracted(extracted, chunk(extracted.text, extracted.headings, sizes), simhash(extracted.text))


class _EmbedActor:
    """A Ray Data actor: loads the embedder once, then embeds batches of ``text`` rows."""

    def __init__(self, factory: EmbedderFactory, batch_size: int) -> None:
        self._embedder = factory()
        self._batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self._embedder.embed([str(t) for t in batch["text"]], batch_size=self._batch_size)
        return {"row": batch["row"], "vector": np.asarray(vectors, dtype=np.float32)}


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How much of the cluster an ingest uses."""

    address: str | None = None
    """Ray cluster to join (``ray://host:10001``, ``auto``); None starts a local one when none is up."""
    embed_actors: int = 2
    """Embedding actors in the pool (each loads the model once)."""
    actor_cpus: float = 1.0
    """CPUs reserved per embedding actor."""
    window_pages: int = 512
    """Fetched pages held before their passages are embedded and stored: bounds the driver's memory
    and the work a killed run loses."""


class RayIngestPipeline(IngestPipeline):
    """:class:`IngestPipeline` whose extraction, chunking and embedding run on Ray."""

    def __init__(
        self,
        index: PassageIndex,
        embedder: Embedder,
        embedder_factory: EmbedderFactory,
        *,
        options: RayOptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(index, embedder, **kwargs)
        self._ray = import_ray()
        self._factory = embedder_factory
        self._options = options or RayOptions()
        self._extract_task = self._ray.remote(num_cpus=1)(_extract_and_chunk)

    def _decide(self, fetched: FetchedPage, result: _Extracted) -> _Prepared | _Duplicate | None:
        """The driver's half of :meth:`IngestPipeline._prepare`, which needs the index."""
        return self._decide_page(
            fetched, result.page, passages=lambda: result.passages, fingerprint=lambda: result.fingerprint
        )

    def _embed_remote(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` on the actor pool; rows come back in input order."""
        vectors = np.zeros((len(texts), self._embedder.dimension), dtype=np.float32)
        if not texts:
            return vectors
        data = self._ray.data
        dataset = data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)]).map_batches(
            _EmbedActor,
            fn_constructor_args=(self._factory, self._batch_size),
            batch_size=self._batch_passages,
            batch_format="numpy",
            compute=data.ActorPoolStrategy(size=self._options.embed_actors),
            num_cpus=self._options.actor_cpus,
        )
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            vectors[np.asarray(batch["row"], dtype=np.int64)] = np.asarray(batch["vector"], dtype=np.float32)
        return vectors

    def _store(self, batch: list[_Prepared], vectors: np.ndarray, summary: IngestSummary) -> None:
        offset = 0
        for item in batch:
            count = len(item.passages)
            self._index.upsert_page(item.page, item.passages, vectors[offset : offset + count])
            offset += count
            summary.pages_new += not item.replaces
            summary.pages_updated += item.replaces
            summary.passages_added += count
        self._index.flush()

    async def _window(
        self,
        window: list[tuple[FetchedPage, Any]],
        summary: IngestSummary,
        finished: Callable[[list[str]], None],
    ) -> None:
        """Settle one window of fetched pages: decide in crawl order, embed on Ray, store in order."""
        if not window:
            return
        started = time.perf_counter()
        results = await asyncio.to_thread(self._ray.get, [ref for _, ref in window])
        summary.stage_seconds["extract_chunk"] += time.perf_counter() - started
        batch: list[_Prepared] = []
        settled: list[str] = []
        for (fetched, _), result in zip(window, results, strict=True):
            if isinstance(result, str):
                summary.failures.append(PageFailure(fetched.url, "extract", result, fetched.status))
                summary.skipped["error"] += 1
                settled.append(fetched.url)
                continue
            prepared = await asyncio.to_thread(self._decide, fetched, result)
            if prepared is None:
                summary.pages_unchanged += 1
                settled.append(fetched.url)
            elif isinstance(prepared, _Duplicate):
                await asyncio.to_thread(self._record_duplicate, prepared)
                summary.duplicates += 1
                settled.append(fetched.url)
            elif prepared.passages:
                batch.append(prepared)
            else:
                settled.append(fetched.url)
        started = time.perf_counter()
        vectors = await asyncio.to_thread(self._embed_remote, [t for item in batch for t in item.embed_texts])
        summary.stage_seconds["embed"] += time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.to_thread(self._store, batch, vectors, summary)
        summary.stage_seconds["store"] += time.perf_counter() - started
        finished(settled + [item.source_url for item in batch])

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
        """Ingest every page ``items`` yields, as :meth:`IngestPipeline.ingest` does, on Ray.

        Fetched pages are handed to Ray tasks as they arrive and settled a window at a time
        (:attr:`RayOptions.window_pages`); a page is finished in the ``journal`` once its window
        is committed.
        """
        summary = summary or IngestSummary(index=self._index.name, seeds=[])
        state = IngestProgress(budget=budget)
        started = time.perf_counter()
        window: list[tuple[FetchedPage, Any]] = []

        def finished(urls: list[str]) -> None:
            if journal is not None and urls:
                journal.finish_urls(urls)

        def report() -> None:
            if progress:
                state.fetched = summary.pages_fetched
                state.indexed, state.passages = summary.pages_indexed, summary.passages_added
                state.unchanged, state.failed = summary.pages_unchanged, len(summary.failures)
                progress(state)

        async for item in items:
            if tap is not None:
                tap(item)
            if isinstance(item, FetchFailure):
                await self._failed(item, summary)
                finished([item.url])
            elif isinstance(item, NotModified):
                summary.pages_unchanged += 1
                summary.pages_not_modified += 1
                summary.stage_seconds["fetch"] += item.elapsed
                await asyncio.to_thread(self._index.mark_fetched, self._url_map.public(item.url), status=304)
                finished([item.url])
            else:
                summary.pages_fetched += 1
                summary.stage_seconds["fetch"] += item.elapsed
                ref = self._extract_task.remote(item.html, self._url_map.public(item.url), self._sizes)
                window.append((item, ref))
                if len(window) >= self._options.window_pages:
                    await self._window(window, summary, finished)
                    window = []
            report()
        await self._window(window, summary, finished)
        manifest = await asyncio.to_thread(self._index.flush)
        summary.index_pages, summary.index_passages = manifest.pages, manifest.passages
        summary.seconds += time.perf_counter() - started
        report()
        return summary


def connect(options: RayOptions) -> bool:
    """Join the cluster at ``options.address`` (or start a local one); True when this call started Ray."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    return True


async def run_ray_ingest(
    seeds: Sequence[str] = (),
    *,
    settings: IngestSettings,
    embedder_factory: EmbedderFactory,
    ray_options: RayOptions | None = None,
    inputs: IngestInputs | None = None,
    index_name: str | None = None,
    max_pages: int | None = None,
    max_depth: int = 10,
    url_map: UrlMap | None = None,
    progress: ProgressCallback | None = None,
    keep_gone: bool = False,
    resume: bool = True,
    record_warc: Path | None = None,
) -> IngestSummary:
    """:func:`ingest.run_ingest` on Ray: same inputs, same index. Joins (or starts) Ray when it is
    not initialised yet, and shuts down only a Ray it started."""
    options = ray_options or RayOptions()
    ray = import_ray()
    started_ray = connect(options)

    def make_pipeline(index: PassageIndex, embedder: Embedder, **kwargs: Any) -> IngestPipeline:
        return RayIngestPipeline(index, embedder, embedder_factory, options=options, **kwargs)

    try:
        return await run_ingest(
            seeds,
            settings=settings,
            embedder=embedder_factory(),  # the driver needs its name and dimension to open the index
            inputs=inputs,
            index_name=index_name,
            max_pages=max_pages,
            max_depth=max_depth,
            url_map=url_map,
            progress=progress,
            keep_gone=keep_gone,
            resume=resume,
            record_warc=record_warc,
            pipeline_factory=make_pipeline,
        )
    finally:
        if started_ray:
            ray.shutdown()
