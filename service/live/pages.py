"""Live pages: check an answer against pages as they are now, fetched at question time.

A question may name pages (``urls``), ask for a web search (``search``), or ask that the stored
pages behind its retrieved passages be revalidated (``recheck``). :class:`LivePages` fetches them
all at once through ingest's :class:`~ingest.OnDemandFetcher` (SSRF guard, robots.txt, opt-outs,
size caps, timeouts), within one time budget: a page not fetched and extracted by then is listed
as skipped and never waited for. The pages are chunked as ingest chunks them; the passages most
related to the question by BM25 (at most ``passages_per_page`` per page, which bounds the
embedding time) are embedded into a temporary index, and the answer searches it alone or ranked
together with the stored index (a :class:`~service.answering.SourceSet`).

A rechecked page is fetched with a conditional GET from the stored validators. When its text
changed, the current text replaces the stored one for this answer (the stored passages of the
page are superseded) and the answer's notices say so; a page now gone is not quoted at all.

Fetched pages stay in a small cache for ``cache_ttl_s`` seconds, with the vectors of the passages
already embedded, so a follow-up question neither refetches nor re-embeds them; after that a
cached page's validators make the next fetch a conditional GET.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from citeline.indexes import Embedder, PageRecord, PassageIndex, bm25_scores
from citeline.ingest import (
    BlockedAddressError,
    ChunkSizes,
    ExtractionError,
    FetchedPage,
    FetchError,
    OnDemandFetcher,
    Validators,
    embedding_text,
    extract_page,
)
from citeline.service.answering.source_set import (
    INDEXED_AT_KEY,
    LIVE_KEY,
    LiveOrigin,
    LivePageReport,
    LiveReport,
    RecheckReport,
    SearchReport,
    SearchResultReport,
    SkippedPage,
    SourceSet,
)
from citeline.service.exceptions import LiveRequestError, SearchError, UrlRefusedError
from citeline.service.live.cache import LivePage, LivePageCache
from citeline.service.live.options import LiveConfig, LiveRequest, Retrieve
from citeline.service.live.websearch import SearchProvider, search_query


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    """Where to fetch from (canonical)."""
    origin: LiveOrigin
    stored: PageRecord | None = None
    """The stored copy, for a recheck: its URL is what citations keep linking to."""

    @property
    def cache_key(self) -> str:
        return self.url if self.stored is None else f"{self.url} as {self.stored.url}"


@dataclass(frozen=True, slots=True)
class _Got:
    page: LivePage
    cached: bool


@dataclass(frozen=True, slots=True)
class _Unchanged:
    status: int | None


@dataclass(frozen=True, slots=True)
class _Failed:
    kind: str
    reason: str
    status: int | None = None


_Outcome = _Got | _Unchanged | _Failed


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _recheck_result(stored: PageRecord, outcome: _Outcome) -> RecheckReport:
    """What revalidating a stored page found, with the sentence the reader is told."""
    url, indexed_at, indexed_hash = stored.url, stored.fetched_at, stored.content_hash
    unchanged = f"{url} is unchanged since it was indexed."
    if isinstance(outcome, _Unchanged):
        checked_at = _now() if outcome.status else None
        return RecheckReport(url, "unchanged", indexed_at, indexed_hash, None, outcome.status, checked_at, unchanged)
    if isinstance(outcome, _Got):
        record = outcome.page.record
        current = (record.content_hash, record.status, record.fetched_at)
        if record.content_hash == indexed_hash:
            return RecheckReport(url, "unchanged", indexed_at, indexed_hash, *current, unchanged)
        note = (
            f"{url} changed since it was indexed ({indexed_at}): this answer uses and cites the page"
            f" as fetched at {record.fetched_at}."
        )
        return RecheckReport(url, "changed", indexed_at, indexed_hash, *current, note)
    if outcome.kind == "gone":
        note = f"{url} is gone ({outcome.reason}) since it was indexed: its passages were not used."
        return RecheckReport(url, "gone", indexed_at, indexed_hash, None, outcome.status, _now(), note)
    note = f"{url} could not be rechecked ({outcome.reason}): its text as indexed ({indexed_at}) was used."
    return RecheckReport(url, "failed", indexed_at, indexed_hash, None, outcome.status, None, note)


def select_passages(question: str, pages: Sequence[LivePage], per_page: int, total: int) -> list[list[int]]:
    """Per page, the positions of the passages to embed for the question, in page order.

    Passages are ranked by BM25 against the question over all the pages' passages together. Every
    page keeps its best two (a page the user named is never left out), then the best of the rest
    fill up to ``total`` passages in all, at most ``per_page`` from one page. Ties go to the earlier
    passage, so a page sharing no word with the question gives its first passages.
    """
    texts = [t for page in pages for t in page.embed_texts]
    scores = bm25_scores(question, texts)
    ranked: list[list[int]] = []
    candidates: list[tuple[float, int, int]] = []  # (-score, page, position)
    offset = 0
    for number, page in enumerate(pages):
        own = scores[offset : offset + len(page.passages)]
        offset += len(page.passages)
        order = sorted(range(len(page.passages)), key=lambda i: (-float(own[i]), i))
        ranked.append(order)
        candidates.extend((-float(own[i]), number, i) for i in order)
    chosen = [set(order[: min(2, per_page)]) for order in ranked]
    room = total - sum(len(c) for c in chosen)
    for _, number, position in sorted(candidates):
        if room <= 0:
            break
        if position not in chosen[number] and len(chosen[number]) < per_page:
            chosen[number].add(position)
            room -= 1
    return [sorted(c) for c in chosen]


class LivePages:
    """Fetches, caches and indexes the live pages of questions (one instance per service)."""

    def __init__(
        self,
        fetcher: OnDemandFetcher,
        embedder: Embedder,
        *,
        config: LiveConfig | None = None,
        sizes: ChunkSizes | None = None,
        search: SearchProvider | None = None,
        embed_batch_size: int = 32,
    ) -> None:
        self.fetcher = fetcher
        self.embedder = embedder
        self.config = config or LiveConfig()
        self.sizes = sizes or ChunkSizes()
        self.search_provider = search
        self.cache = LivePageCache(self.config.cache_ttl_s, self.config.cache_pages)
        self._batch_size = embed_batch_size

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    # -- checking the request ------------------------------------------------------------------

    def _requested(self, urls: Sequence[str]) -> list[str]:
        if len(urls) > self.config.max_urls:
            raise LiveRequestError(f"{len(urls)} URLs; at most {self.config.max_urls} are fetched per question")
        checked: list[str] = []
        for url in urls:
            try:
                checked.append(self.fetcher.check(url))
            except BlockedAddressError as exc:
                raise UrlRefusedError(f"{url} is refused, nothing was fetched: {exc.reason}") from exc
        return list(dict.fromkeys(checked))

    def validate(self, request: LiveRequest) -> list[str]:
        """The request's URLs, checked and canonical; :class:`LiveRequestError` when the options
        cannot be served. Runs before anything is fetched."""
        if request.search and self.search_provider is None:
            raise LiveRequestError("web search is not configured on this server (set CITELINE_SEARCH_URL)")
        wants_live = bool(request.urls) or request.search
        if request.sources == "index" and wants_live:
            raise LiveRequestError("urls and search fetch live pages: use sources 'live' or 'both'")
        if request.sources != "index" and not wants_live:
            raise LiveRequestError(f"sources {request.sources!r} needs urls or search: true")
        if request.recheck and request.sources == "live":
            raise LiveRequestError("recheck revalidates the stored pages an answer uses: use sources 'index' or 'both'")
        return self._requested(request.urls)

    # -- gathering -------------------------------------------------------------------------------

    async def gather(
        self, question: str, request: LiveRequest, stored: PassageIndex | None, retrieve: Retrieve
    ) -> SourceSet:
        """Fetch what ``request`` asks for and return the sources to answer from (close them after)."""
        started = time.monotonic()
        budget = request.budget_s or self.config.budget_s
        deadline = started + budget
        urls = self.validate(request)
        targets = [_Target(url, "url") for url in urls]
        skipped: list[SkippedPage] = []
        search_report: SearchReport | None = None
        if request.search:
            search_report = await self._search(question, deadline, targets, skipped)
        if request.recheck and stored is not None:
            targets.extend(await self._recheck_targets(question, request, stored, retrieve, targets))
        outcomes = await self._fetch_all(targets, deadline, budget)
        fetch_ms = (time.monotonic() - started) * 1000

        live: list[tuple[LivePage, LiveOrigin, bool]] = []  # (page, why fetched, from the cache)
        rechecked: list[RecheckReport] = []
        superseded: set[str] = set()
        metadata: dict[str, dict[str, str]] = {}
        notices: list[str] = []
        for target, outcome in zip(targets, outcomes, strict=True):
            if target.stored is not None:
                recheck = _recheck_result(target.stored, outcome)
                rechecked.append(recheck)
                if recheck.outcome == "changed" and isinstance(outcome, _Got):
                    live.append((outcome.page, "recheck", outcome.cached))
                    metadata[target.stored.url] = {LIVE_KEY: "recheck", INDEXED_AT_KEY: target.stored.fetched_at}
                if recheck.outcome in ("changed", "gone"):
                    superseded.add(target.stored.url)
                if recheck.outcome != "unchanged":
                    notices.append(recheck.note)
            elif isinstance(outcome, _Got):
                url = outcome.page.record.url
                if url not in metadata:
                    live.append((outcome.page, target.origin, outcome.cached))
                    metadata[url] = {LIVE_KEY: target.origin}
                    superseded.add(url)  # the stored copy, if any, is older than this one
            else:
                assert isinstance(outcome, _Failed)  # only a stored page's fetch can end unchanged
                skipped.append(SkippedPage(target.url, outcome.kind, outcome.reason, outcome.status))
                notices.append(f"Not used: {target.url} ({outcome.reason}).")

        embed_started = time.monotonic()
        pages = [page for page, _, _ in live]
        chosen = select_passages(question, pages, self.config.passages_per_page, self.config.max_passages)
        await asyncio.to_thread(self._embed, pages, chosen)
        live_index = await asyncio.to_thread(self._index, pages, chosen) if pages else None
        embed_ms = (time.monotonic() - embed_started) * 1000

        page_reports = [
            LivePageReport(
                url=page.record.url,
                title=page.record.title,
                origin=origin,
                status=page.record.status or 200,
                fetched_at=page.record.fetched_at,
                content_hash=page.record.content_hash,
                cached=cached,
                fetch_ms=0.0 if cached else round(page.fetch_ms, 1),
                passages=len(positions),
            )
            for (page, origin, cached), positions in zip(live, chosen, strict=True)
        ]
        report = LiveReport(
            sources=request.sources,
            budget_s=budget,
            pages=page_reports,
            skipped=skipped,
            rechecked=rechecked,
            search=search_report,
            fetch_ms=round(fetch_ms, 1),
            embed_ms=round(embed_ms, 1),
            total_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return SourceSet(
            stored=stored if request.sources != "live" else None,
            live=live_index,
            superseded=frozenset(superseded),
            live_metadata=metadata,
            live_texts=[page.record.text for page in pages],
            report=report,
            notices=notices,
        )

    async def _search(
        self, question: str, deadline: float, targets: list[_Target], skipped: list[SkippedPage]
    ) -> SearchReport:
        provider = self.search_provider
        assert provider is not None  # validate() refused the request otherwise
        query = search_query(question)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                results = await provider.search(query, limit=self.config.search_results)
        except SearchError as exc:
            return SearchReport(provider.name, query, [], error=str(exc))
        except TimeoutError:
            return SearchReport(provider.name, query, [], error="the search did not answer within the budget")
        known = {t.url for t in targets}
        for result in results:
            try:
                url = self.fetcher.check(result.url)
            except BlockedAddressError as exc:
                skipped.append(SkippedPage(result.url, "blocked", exc.reason))
                continue
            if url in known:
                continue
            if len(targets) >= self.config.max_urls:
                skipped.append(SkippedPage(url, "limit", f"more than {self.config.max_urls} pages for one question"))
                continue
            known.add(url)
            targets.append(_Target(url, "search"))
        reported = [SearchResultReport(r.url, r.title) for r in results]
        return SearchReport(provider.name, query, reported)

    async def _recheck_targets(
        self,
        question: str,
        request: LiveRequest,
        stored: PassageIndex,
        retrieve: Retrieve,
        targets: Sequence[_Target],
    ) -> list[_Target]:
        hits = await asyncio.to_thread(retrieve, stored, question, request.top_k)
        fetched = {t.url for t in targets}
        out: list[_Target] = []
        for url in dict.fromkeys(h.url for h in hits):
            if url in fetched:
                continue  # a page the question fetches anyway replaces its stored copy
            record = await asyncio.to_thread(stored.page, url)
            if record is None:
                continue
            out.append(_Target(record.fetched_url or record.url, "recheck", stored=record))
        return out

    async def _fetch_all(self, targets: Sequence[_Target], deadline: float, budget: float) -> list[_Outcome]:
        """Every target's outcome; those not ready by the deadline are cancelled, not awaited."""
        if not targets:
            return []
        tasks = [asyncio.ensure_future(self._obtain(t)) for t in targets]
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        outcomes: list[_Outcome | None] = []
        for task in tasks:
            if task.done():
                outcomes.append(task.result())
            else:
                task.cancel()
                outcomes.append(None)
        missed = _Failed("budget", f"not fetched within the {budget:g} s budget")
        return [o if o is not None else missed for o in outcomes]

    async def _obtain(self, target: _Target) -> _Outcome:
        """Take one target from the cache or fetch and extract it; never raises."""
        key = target.cache_key
        cached = self.cache.get(key)
        if cached is not None:
            return _Got(cached, cached=True)
        stored = target.stored
        if stored is not None and self.cache.unchanged_recently(key, stored.content_hash):
            return _Unchanged(None)
        return await self._fetch(target, self.cache.get(key, fresh=False))

    async def _fetch(self, target: _Target, stale: LivePage | None) -> _Outcome:
        key, stored = target.cache_key, target.stored
        source = stored if stored is not None else (stale.record if stale is not None else None)
        validators: Validators | None = None
        if source is not None and (source.etag or source.last_modified):
            validators = (source.etag, source.last_modified)
        started = time.monotonic()
        try:
            fetched = await self.fetcher.fetch(target.url, validators=validators)
        except FetchError as exc:
            return _Failed(exc.kind, exc.reason, exc.status)
        except Exception as exc:  # an exotic server must cost one page, not the question
            return _Failed("error", f"unexpected error: {type(exc).__name__}: {exc}")
        if isinstance(fetched, FetchedPage):
            return await self._extracted(target, fetched, stale, (time.monotonic() - started) * 1000)
        if stored is not None:
            self.cache.note_unchanged(key, stored.content_hash)
            return _Unchanged(304)
        if stale is not None:
            self.cache.revalidated(key)
            return _Got(stale, cached=True)
        return _Failed("error", "HTTP 304 to an unconditional request", 304)

    async def _extracted(
        self, target: _Target, fetched: FetchedPage, stale: LivePage | None, fetch_ms: float
    ) -> _Outcome:
        url = target.stored.url if target.stored is not None else fetched.final_url
        try:
            record, passages = await asyncio.to_thread(extract_page, fetched, url=url, sizes=self.sizes)
        except ExtractionError as exc:
            return _Failed("empty", exc.reason, fetched.status)
        except Exception as exc:
            return _Failed("error", f"extraction failed: {type(exc).__name__}: {exc}", fetched.status)
        if not passages:
            return _Failed("empty", "no text to quote", fetched.status)
        page = LivePage(
            record,
            passages,
            [embedding_text(record.title, p.heading, p.text) for p in passages],
            fetch_ms,
            checked_at=time.monotonic(),
        )
        if stale is not None and (stale.record.content_hash, stale.record.chunking) == (
            record.content_hash,
            record.chunking,
        ):
            page.vectors = stale.vectors  # same text, same passages: what was embedded still holds
        self.cache.put(target.cache_key, page)
        return _Got(page, cached=False)

    # -- embedding and indexing --------------------------------------------------------------------

    def _embed(self, pages: Sequence[LivePage], chosen: Sequence[Sequence[int]]) -> None:
        missing = [(page, i) for page, positions in zip(pages, chosen, strict=True) for i in positions
                   if i not in page.vectors]  # fmt: skip
        if not missing:
            return
        vectors = self.embedder.embed([page.embed_texts[i] for page, i in missing], batch_size=self._batch_size)
        for (page, i), vector in zip(missing, vectors, strict=True):
            page.vectors[i] = np.asarray(vector, dtype=np.float32)

    def _index(self, pages: Sequence[LivePage], chosen: Sequence[Sequence[int]]) -> PassageIndex:
        index = PassageIndex.temporary(
            "live", embedding_model=self.embedder.model_name, dimension=self.embedder.dimension
        )
        try:
            for page, positions in zip(pages, chosen, strict=True):
                vectors = np.stack([page.vectors[i] for i in positions])
                index.upsert_page(page.record, [page.passages[i] for i in positions], vectors)
        except BaseException:
            index.close()
            raise
        return index
