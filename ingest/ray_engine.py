"""The Ray engine of ``citeline ingest --engine ray``: the same index as the local engine, with the
CPU work spread over a Ray cluster.

The crawl (frontier, robots.txt, politeness, SSRF guard) and the pipeline's loop stay in the driver:
:class:`RayEngine` is only the :class:`~ingest.engine.Engine` the pipeline is given. Each fetched
page is extracted and chunked by a Ray task as soon as it arrives, up to
:attr:`RayOptions.window_pages` pages ahead; the pipeline then decides, in crawl order, what is new,
unchanged or a duplicate (that needs the index), and the passages of a batch are embedded by a Ray
Data actor pool, each actor loading the model once. The driver writes the pages in order, one
transaction per page, exactly as the local engine does.

Ray is an optional dependency: ``pip install 'citeline[ray]'``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from citeline.indexes import Embedder, PassageRecord, Vectors
from citeline.ingest._exceptions import ExtractionError, IngestError
from citeline.ingest._settings import IngestSettings
from citeline.ingest.chunk import ChunkSizes, chunk
from citeline.ingest.dedup import simhash
from citeline.ingest.documents import extract_fetched
from citeline.ingest.engine import PageResult, ProcessedPage
from citeline.ingest.extract import ExtractedPage
from citeline.ingest.fetch import FetchedPage
from citeline.ingest.options import IngestOptions
from citeline.ingest.pdf import PdfLimits
from citeline.ingest.runner import IngestInputs, run_ingest
from citeline.ingest.summary import IngestSummary, ProgressCallback

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
    """What a Ray task sends back: everything computed, since the driver cannot call back into it."""

    page: ExtractedPage
    passages: list[PassageRecord]
    fingerprint: int | None


def _extract_and_chunk(
    page: FetchedPage, public_url: str, sizes: ChunkSizes, pdf: PdfLimits | None = None
) -> _Extracted | str:
    """One page's CPU work, run as a Ray task: the extraction error's reason rather than a raise,
    so a bad page is the page's failure, not the task's."""
    try:
        extracted = extract_fetched(page, public_url, pdf)
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
    """Fetched pages handed to Ray tasks before the oldest one's result is awaited: bounds the
    driver's memory and the work a killed run loses."""
    batch_passages: int = 4096
    """Passages embedded by one Ray Data job: each job starts its actor pool (and loads the model)
    anew, so batches are far larger than the local engine's."""


class RayEngine:
    """The :class:`~ingest.engine.Engine` that extracts and chunks in Ray tasks and embeds on a
    Ray Data actor pool."""

    def __init__(self, ray: ModuleType, embedder_factory: EmbedderFactory, options: RayOptions) -> None:
        self._ray = ray
        self._factory = embedder_factory
        self._options = options
        self._extract_task = ray.remote(num_cpus=1)(_extract_and_chunk)
        self.lookahead = max(1, options.window_pages)
        self.batch_passages: int | None = options.batch_passages

    def process(
        self, page: FetchedPage, url: str, sizes: ChunkSizes, pdf: PdfLimits | None = None
    ) -> Awaitable[PageResult]:
        # Submitted now, awaited when the pipeline reaches this page: the tasks run meanwhile.
        return self._result(self._extract_task.remote(page, url, sizes, pdf))

    async def _result(self, ref: Any) -> PageResult:
        result: _Extracted | str = await asyncio.to_thread(self._ray.get, ref)
        if isinstance(result, str):
            return result
        return ProcessedPage(result.page, passages=lambda: result.passages, fingerprint=lambda: result.fingerprint)

    def embed(self, embedder: Embedder, texts: list[str], batch_size: int) -> Vectors:
        """Embed ``texts`` on the actor pool; rows come back in input order."""
        vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        if not texts:
            return vectors
        data = self._ray.data
        dataset = data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)]).map_batches(
            _EmbedActor,
            fn_constructor_args=(self._factory, batch_size),
            batch_size=batch_size,
            batch_format="numpy",
            compute=data.ActorPoolStrategy(size=self._options.embed_actors),
            num_cpus=self._options.actor_cpus,
        )
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            vectors[np.asarray(batch["row"], dtype=np.int64)] = np.asarray(batch["vector"], dtype=np.float32)
        return vectors


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
    options: IngestOptions | None = None,
    progress: ProgressCallback | None = None,
) -> IngestSummary:
    """:func:`ingest.run_ingest` on Ray: same inputs, same options, same index.
    Joins (or starts) Ray when it is not initialised yet, and shuts down only a Ray it started."""
    ray_options = ray_options or RayOptions()
    ray = import_ray()
    started_ray = connect(ray_options)
    try:
        return await run_ingest(
            seeds,
            settings=settings,
            embedder=embedder_factory(),  # the driver needs its name and dimension to open the index
            inputs=inputs,
            options=options,
            progress=progress,
            engine=RayEngine(ray, embedder_factory, ray_options),
        )
    finally:
        if started_ray:
            ray.shutdown()
