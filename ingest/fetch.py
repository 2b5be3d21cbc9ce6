"""Stage 1: fetch pages with a bounded, scoped, polite and guarded asynchronous crawler.

The crawler takes its ``httpx.AsyncClient`` from the caller, so tests hand it a ``MockTransport``
and the runner a client whose transport refuses private addresses (``ingest.safety``). It never
raises for one bad page: every seed and discovered link ends as a :class:`FetchedPage`, a
:class:`NotModified` or a :class:`FetchFailure` whose ``kind`` says why it was skipped.

Per request, in order: scope and scheme checks, robots.txt (``ingest.robots``), the host's turn
(``ingest.pacing``: at most one request per ``per_host_delay`` or the robots Crawl-delay), the request
itself (conditional when the index holds validators for the page; 429/503 retried with back-off by
``ingest.retries``), each redirect hop checked like the first URL (address guard, robots.txt, the
host's turn) before it is requested, a content-type check, a decoded-size cap enforced while
decompressing (``ingest.bounded``: a gzip bomb stops at the cap, an encoding that cannot be bounded is
refused), charset detection, then the owner's AI opt-outs (``ingest.optout``: ``noindex``/``noai``/TDMRep).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from citeline.ingest._decode import decode_html
from citeline.ingest._exceptions import FetchError, MarkupError, OutOfScopeError, SkipKind
from citeline.ingest.bounded import ACCEPT_ENCODING, read_bounded, send_following
from citeline.ingest.optout import opt_out_reason
from citeline.ingest.pacing import HostPacer
from citeline.ingest.retries import fetch_with_retries
from citeline.ingest.robots import RobotsCache
from citeline.ingest.safety import AddressPolicy, BlockedAddressError, check_url, guarded_transport
from citeline.ingest.scope import CrawlScope, canonical, extract_links
from citeline.ingest.tdmrep import TdmRepCache

HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPE = "application/pdf"
DOCUMENT_TYPES = (*HTML_TYPES, PDF_TYPE)
"""Content types the crawler keeps; a PDF's bytes are read under the same cap as a page's."""
# Links to these are never pages worth extracting; skipping them saves a request each.
_SKIP_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".css", ".js", ".zip", ".gz", ".tgz",
    ".bz2", ".xz", ".tar", ".epub", ".mp3", ".mp4", ".woff", ".woff2", ".ttf", ".txt",
    ".json", ".xml", ".rst",
)  # fmt: skip
GONE_STATUSES = frozenset([404, 410])


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A successfully fetched page: HTML (``html``), or a document kept as bytes (``data``, a PDF)."""

    url: str
    """The URL as requested (normalised, without fragment)."""
    final_url: str
    """Where the redirects, if any, ended."""
    status: int
    html: str
    headers: dict[str, str]
    depth: int
    elapsed: float
    media_type: str = "text/html"
    """What ``html`` or ``data`` holds: HTML, ``application/pdf``, ``text/markdown`` or ``text/plain``."""
    data: bytes = b""
    """The body as received, for a document that is not text (a PDF); empty for HTML."""


@dataclass(frozen=True, slots=True)
class NotModified:
    """The server answered 304 to a conditional GET: the stored copy is current."""

    url: str
    depth: int
    elapsed: float
    status: int = 304


@dataclass(frozen=True, slots=True)
class FetchFailure:
    url: str
    reason: str
    status: int | None = None
    kind: SkipKind = "error"


CrawlItem = FetchedPage | NotModified | FetchFailure


class LinkStore(Protocol):
    """Remembers each page's links, so a page answering 304 still leads the crawl on.

    The crawler calls it from worker threads, never on its event loop (a write may fsync, and a read
    may wait on a lock held through another thread's commit), so it must be thread-safe.
    """

    def links(self, url: str) -> list[str] | None: ...

    def save_links(self, url: str, links: Sequence[str]) -> None: ...


Validators = Callable[[str], "tuple[str | None, str | None] | None"]
"""Maps a URL to the (ETag, Last-Modified) of its stored copy, or None when none is stored."""


@dataclass(frozen=True, slots=True)
class CrawlLimits:
    """Bounds of one crawl."""

    max_pages: int = 100
    max_depth: int = 10
    concurrency: int = 8
    per_host_delay: float = 0.0
    """Seconds between two requests to one host (raised by a robots.txt Crawl-delay)."""
    max_page_bytes: int = 5_000_000
    """Cap on the decoded (decompressed) body."""
    total_timeout: float = 30.0
    max_retries: int = 3
    """Retries of a 429/503 answer, with exponential back-off (``Retry-After`` honoured)."""


class Crawler:
    """Breadth-first crawl from seed URLs within a :class:`CrawlScope`.

    ``robots``, ``tdm`` and ``pacer`` bring robots.txt, TDMRep and per-host pacing (a pacer spacing
    requests ``per_host_delay`` apart is made when none is given); ``policy`` refuses non-http(s)
    and credentials-in-URL links before any request (the client's transport refuses private
    addresses); ``validators`` turns requests for stored pages into conditional GETs.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: CrawlLimits,
        *,
        scope: CrawlScope | None = None,
        robots: RobotsCache | None = None,
        tdm: TdmRepCache | None = None,
        pacer: HostPacer | None = None,
        policy: AddressPolicy | None = None,
        validators: Validators | None = None,
        link_store: LinkStore | None = None,
    ) -> None:
        self._client = client
        self._limits = limits
        self._scope = scope or CrawlScope()
        self._robots = robots
        self._tdm = tdm
        self._pacer = pacer or HostPacer(min_interval=limits.per_host_delay, robots=robots)
        self._policy = policy or AddressPolicy()
        self._validators = validators
        self._link_store = link_store
        self._token = robots.token if robots is not None else "citeline"
        self.left_by_cap: set[str] = set()
        """In-scope URLs the last crawl found but did not fetch because ``max_pages`` was reached."""

    def in_scope(self, url: str, prefixes: Iterable[str]) -> bool:
        return any(url.startswith(prefix) for prefix in prefixes)

    async def fetch(self, url: str, *, prefixes: Iterable[str] = (), depth: int = 0) -> FetchedPage | NotModified:
        """Fetch one page; raise FetchError (or a subclass) with a readable reason and kind."""
        try:
            check_url(url, self._policy)
        except BlockedAddressError as exc:
            raise FetchError(url, exc.reason, kind="blocked") from exc
        if self._robots is not None and not await self._robots.allowed(url):
            outcome = (await self._robots.rules(url)).outcome
            raise FetchError(url, f"disallowed by robots.txt ({outcome})", kind="robots")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.total_timeout):
                return await self._fetch(url, prefixes=list(prefixes), depth=depth, started=started)
        except TimeoutError as exc:
            raise FetchError(url, f"timed out after {self._limits.total_timeout:g} s") from exc
        except httpx.TooManyRedirects as exc:
            raise FetchError(url, "too many redirects") from exc
        except httpx.TimeoutException as exc:
            raise FetchError(url, f"timed out ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            message = str(exc)
            if message.startswith("blocked"):
                raise FetchError(url, message, kind="blocked") from exc
            raise FetchError(url, f"network error: ConnectError: {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(url, f"network error: {type(exc).__name__}: {exc}") from exc

    async def _links_known(self, url: str, depth: int) -> bool:
        if depth >= self._limits.max_depth:
            return True
        return self._link_store is not None and await asyncio.to_thread(self._link_store.links, url) is not None

    async def _request(self, url: str, depth: int) -> httpx.Request:
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        # A 304 has no links to follow: only ask for one when the page's links are known (or unneeded).
        stored = None
        if self._validators is not None and await self._links_known(url, depth):
            stored = self._validators(url)
        if stored is not None:
            etag, last_modified = stored
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
        return self._client.build_request("GET", url, headers=headers)

    async def _send_one(self, request: httpx.Request) -> httpx.Response:
        return await fetch_with_retries(
            lambda: self._client.send(request, stream=True, follow_redirects=False),
            str(request.url),
            self._pacer,
            max_retries=self._limits.max_retries,
        )

    async def _check_hop(self, url: str, target: httpx.URL) -> None:
        """Refuse a redirect of ``url`` to a target the crawler would refuse as a first URL, before requesting it."""
        hop = str(target)
        try:
            check_url(hop, self._policy)
        except BlockedAddressError as exc:
            raise FetchError(url, f"redirected to {hop}: {exc.reason}", kind="blocked") from exc
        if self._robots is not None and not await self._robots.allowed(hop):
            outcome = (await self._robots.rules(hop)).outcome
            raise FetchError(url, f"redirected to {hop}, disallowed by robots.txt ({outcome})", kind="robots")

    async def _fetch(self, url: str, *, prefixes: list[str], depth: int, started: float) -> FetchedPage | NotModified:
        response = await send_following(
            self._send_one,
            await self._request(url, depth),
            max_redirects=self._client.max_redirects if self._client.follow_redirects else None,
            before_hop=functools.partial(self._check_hop, url),
        )
        try:
            final_url = canonical(str(response.url))
            if prefixes and final_url != url and not self.in_scope(final_url, prefixes):
                raise OutOfScopeError(url, f"redirected out of scope to {final_url}", kind="scope")
            if response.status_code == 304:
                return NotModified(url, depth, time.perf_counter() - started)
            if response.status_code in GONE_STATUSES:
                raise FetchError(url, f"HTTP {response.status_code}", status=response.status_code, kind="gone")
            if response.status_code >= 400:
                raise FetchError(url, f"HTTP {response.status_code}", status=response.status_code)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type not in DOCUMENT_TYPES:
                reason = f"not HTML or PDF ({content_type or 'no content type'})"
                raise FetchError(url, reason, status=response.status_code, kind="type")
            body = await read_bounded(response, self._limits.max_page_bytes, url)
            if content_type == PDF_TYPE:
                return await self._document(url, final_url, response, body, depth=depth, started=started)
            html = decode_html(body, response.charset_encoding)
            del body
            await self._refuse_opted_out(url, final_url, response, html)
            return FetchedPage(
                url=url,
                final_url=final_url,
                status=response.status_code,
                html=html,
                headers={k.lower(): v for k, v in response.headers.items()},
                depth=depth,
                elapsed=time.perf_counter() - started,
            )
        finally:
            await response.aclose()

    async def _refuse_opted_out(self, url: str, final_url: str, response: httpx.Response, html: str) -> None:
        """FetchError (kind ``opt_out``) when the owner reserved the page: its headers, its markup
        (``html``; empty for a PDF) or the site's TDMRep."""
        reservation = await self._tdm.reservation(final_url) if self._tdm is not None else None
        opted_out = opt_out_reason(final_url, response.headers, html, token=self._token, tdmrep=reservation)
        if opted_out is not None:
            raise FetchError(url, f"owner opted out ({opted_out})", status=response.status_code, kind="opt_out")

    async def _document(
        self, url: str, final_url: str, response: httpx.Response, body: bytes, *, depth: int, started: float
    ) -> FetchedPage:
        """A PDF: kept as bytes, with no links to follow; the owner's opt-outs are its headers and TDMRep."""
        await self._refuse_opted_out(url, final_url, response, "")
        return FetchedPage(
            url=url,
            final_url=final_url,
            status=response.status_code,
            html="",
            headers={k.lower(): v for k, v in response.headers.items()},
            depth=depth,
            elapsed=time.perf_counter() - started,
            media_type=PDF_TYPE,
            data=body,
        )

    async def crawl(
        self,
        seeds: Iterable[str],
        *,
        listed: Iterable[str] = (),
        done: Iterable[str] = (),
        queued: Iterable[tuple[str, int]] = (),
        on_discovered: Callable[[list[tuple[str, int]]], None] | None = None,
    ) -> AsyncIterator[CrawlItem]:
        """Yield every fetched page, revalidated page or failure, up to ``max_pages`` URLs.

        ``seeds`` are crawled from; ``listed`` URLs (from a sitemap or a feed) are fetched but their
        links are not followed, and they do not widen the scope (unless there are no seeds).

        A resumed crawl passes what its checkpoint holds: ``done`` URLs are not fetched again and
        ``queued`` ones (with their depth) are fetched before anything new. ``on_discovered`` is
        told about every URL the crawl adds, before the page that linked to it is yielded, so a
        checkpoint written from it never loses a link. It runs in a worker thread, like every
        :class:`LinkStore` call: a checkpoint's commit fsyncs, which on the loop would stall every
        fetch and timer.
        """
        seed_list = [canonical(s) for s in seeds]
        listed_list = [canonical(u) for u in listed]
        prefixes = self._scope.bounds(seed_list or listed_list)
        done_set = set(done)
        seen: set[str] = set(done_set)
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        results: asyncio.Queue[CrawlItem | None] = asyncio.Queue()
        budget = self._limits.max_pages
        initial: list[tuple[str, int]] = []
        leaf = self._limits.max_depth  # at the depth limit: fetched, never followed
        self.left_by_cap = set()
        for url, depth in [*queued, *((s, 0) for s in seed_list), *((u, leaf) for u in listed_list)]:
            if url in seen:
                continue
            if len(seen) >= budget:
                self.left_by_cap.add(url)
                continue
            seen.add(url)
            initial.append((url, depth))
        if on_discovered and initial:
            await asyncio.to_thread(on_discovered, initial)
        for entry in initial:
            queue.put_nowait(entry)

        def follow(links: list[str], depth: int) -> list[tuple[str, int]]:
            found: list[tuple[str, int]] = []
            for link in links:
                if link in seen or not self._scope.follows(link, prefixes):
                    continue
                if urlsplit(link).path.lower().endswith(_SKIP_SUFFIXES):
                    continue
                if len(seen) >= budget:
                    self.left_by_cap.add(link)
                    continue
                seen.add(link)
                found.append((link, depth + 1))
            return found

        async def worker() -> None:
            while True:
                url, depth = await queue.get()
                try:
                    page = await self.fetch(url, prefixes=prefixes, depth=depth)
                except FetchError as exc:
                    await results.put(FetchFailure(url, exc.reason, exc.status, exc.kind))
                except Exception as exc:  # a bug or an exotic server must cost one page, not the run
                    await results.put(FetchFailure(url, f"unexpected error: {type(exc).__name__}: {exc}"))
                else:
                    links: list[str] = []
                    if isinstance(page, FetchedPage) and page.media_type != PDF_TYPE:
                        try:
                            links = extract_links(page.html, page.final_url)
                        except MarkupError as exc:
                            await results.put(FetchFailure(url, str(exc), page.status))
                            continue
                        if self._link_store is not None:
                            await asyncio.to_thread(self._link_store.save_links, url, links)
                    elif self._link_store is not None:
                        saved = await asyncio.to_thread(self._link_store.links, url)
                        links = saved or []
                    if links and depth < self._limits.max_depth:
                        found = follow(links, depth)
                        if found:
                            if on_discovered:
                                await asyncio.to_thread(on_discovered, found)
                            for entry in found:
                                queue.put_nowait(entry)
                    await results.put(page)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(max(1, self._limits.concurrency))]

        async def close_when_done() -> None:
            await queue.join()
            await results.put(None)

        closer = asyncio.create_task(close_when_done())
        try:
            while (item := await results.get()) is not None:
                yield item
        finally:
            for task in [*workers, closer]:
                task.cancel()
            await asyncio.gather(*workers, closer, return_exceptions=True)


def make_client(
    *,
    user_agent: str,
    connect_timeout: float,
    read_timeout: float,
    max_redirects: int,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
    policy: AddressPolicy | None = None,
) -> httpx.AsyncClient:
    """The crawler's HTTP client: timeouts, redirect cap, connection limits and, unless a transport
    is given (tests), a transport that refuses private addresses outside ``policy``'s allow-list."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        headers={
            "User-Agent": user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            # Also robots.txt, tdmrep.json, sitemaps and feeds: httpx's default would add br and zstd.
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout),
        follow_redirects=True,
        max_redirects=max_redirects,
        limits=limits,
        transport=transport or guarded_transport(policy or AddressPolicy(), limits=limits),
    )
