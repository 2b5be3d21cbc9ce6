"""Stage 1: fetch pages with a bounded, scoped, asynchronous crawler.

The crawler takes its ``httpx.AsyncClient`` from the caller when one is given, so tests hand it a
``MockTransport`` and the pipeline a real client. It never raises for one bad page: every seed and
discovered link ends as either a :class:`FetchedPage` or a :class:`FetchFailure`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import lxml.html
from courlan import normalize_url

from ingest._exceptions import FetchError, OutOfScopeError, TooLargeError

HTML_TYPES = ("text/html", "application/xhtml+xml")
# Links to these are never pages worth extracting; skipping them saves a request each.
_SKIP_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".css", ".js", ".zip", ".gz", ".tgz",
    ".bz2", ".xz", ".tar", ".pdf", ".epub", ".mp3", ".mp4", ".woff", ".woff2", ".ttf", ".txt",
    ".json", ".xml", ".rst",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A successfully fetched HTML page."""

    url: str
    """The URL as requested (normalised, without fragment)."""
    final_url: str
    """Where the redirects, if any, ended."""
    status: int
    html: str
    headers: dict[str, str]
    depth: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class FetchFailure:
    url: str
    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class CrawlLimits:
    """Bounds of one crawl."""

    max_pages: int = 100
    max_depth: int = 10
    concurrency: int = 8
    per_host_delay: float = 0.0
    max_page_bytes: int = 5_000_000
    total_timeout: float = 30.0


def canonical(url: str) -> str:
    """Normalise a URL for de-duplication: no fragment, lower-case host, sorted query."""
    url, _ = urldefrag(url)
    try:
        return str(normalize_url(url))
    except ValueError:
        return url


def scope_prefix(seed: str) -> str:
    """A seed's scope: its scheme, host and directory (``https://h/docs/a.html`` -> ``https://h/docs/``)."""
    parts = urlsplit(canonical(seed))
    path = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"


def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute http(s) links of a page, fragments removed, in document order."""
    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return []
    base_href = tree.find(".//base[@href]")
    if base_href is not None:
        base_url = urljoin(base_url, base_href.get("href", ""))
    links: list[str] = []
    for href in tree.xpath("//a/@href"):
        absolute = urljoin(base_url, str(href).strip())
        if urlsplit(absolute).scheme in ("http", "https"):
            links.append(canonical(absolute))
    return links


@dataclass
class _HostClock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: float = 0.0


class Crawler:
    """Breadth-first crawl from seed URLs, staying under each seed's directory."""

    def __init__(self, client: httpx.AsyncClient, limits: CrawlLimits) -> None:
        self._client = client
        self._limits = limits
        self._hosts: dict[str, _HostClock] = {}

    def in_scope(self, url: str, prefixes: Iterable[str]) -> bool:
        return any(url.startswith(prefix) for prefix in prefixes)

    async def _wait_turn(self, url: str) -> None:
        if self._limits.per_host_delay <= 0:
            return
        clock = self._hosts.setdefault(urlsplit(url).netloc, _HostClock())
        async with clock.lock:
            wait = clock.last + self._limits.per_host_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            clock.last = time.monotonic()

    async def fetch(self, url: str, *, prefixes: Iterable[str] = (), depth: int = 0) -> FetchedPage:
        """Fetch one page; raise FetchError (or a subclass) with a readable reason."""
        await self._wait_turn(url)
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
        except httpx.HTTPError as exc:
            raise FetchError(url, f"network error: {type(exc).__name__}: {exc}") from exc

    async def _fetch(self, url: str, *, prefixes: list[str], depth: int, started: float) -> FetchedPage:
        async with self._client.stream("GET", url) as response:
            final_url = canonical(str(response.url))
            if prefixes and final_url != url and not self.in_scope(final_url, prefixes):
                raise OutOfScopeError(url, f"redirected out of scope to {final_url}")
            if response.status_code >= 400:
                raise FetchError(url, f"HTTP {response.status_code}", status=response.status_code)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type not in HTML_TYPES:
                raise FetchError(url, f"not HTML ({content_type or 'no content type'})", status=response.status_code)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > self._limits.max_page_bytes:
                    raise TooLargeError(url, f"body larger than {self._limits.max_page_bytes} bytes")
            encoding = response.charset_encoding or "utf-8"
            try:
                html = bytes(body).decode(encoding, errors="replace")
            except LookupError:
                html = bytes(body).decode("utf-8", errors="replace")
            return FetchedPage(
                url=url,
                final_url=final_url,
                status=response.status_code,
                html=html,
                headers={k.lower(): v for k, v in response.headers.items()},
                depth=depth,
                elapsed=time.perf_counter() - started,
            )

    async def crawl(self, seeds: Iterable[str]) -> AsyncIterator[FetchedPage | FetchFailure]:
        """Yield every fetched page or failure, up to ``max_pages`` pages requested."""
        seed_list = [canonical(s) for s in seeds]
        prefixes = sorted({scope_prefix(s) for s in seed_list})
        seen: set[str] = set()
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        results: asyncio.Queue[FetchedPage | FetchFailure | None] = asyncio.Queue()
        budget = self._limits.max_pages
        for seed in seed_list:
            if seed not in seen and len(seen) < budget:
                seen.add(seed)
                queue.put_nowait((seed, 0))

        async def worker() -> None:
            while True:
                url, depth = await queue.get()
                try:
                    page = await self.fetch(url, prefixes=prefixes, depth=depth)
                except FetchError as exc:
                    await results.put(FetchFailure(url, exc.reason, exc.status))
                else:
                    if depth < self._limits.max_depth:
                        for link in extract_links(page.html, page.final_url):
                            if len(seen) >= budget:
                                break
                            if link in seen or not self.in_scope(link, prefixes):
                                continue
                            if urlsplit(link).path.lower().endswith(_SKIP_SUFFIXES):
                                continue
                            seen.add(link)
                            queue.put_nowait((link, depth + 1))
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
) -> httpx.AsyncClient:
    """The crawler's HTTP client with its timeouts, redirect cap and connection limits."""
    return httpx.AsyncClient(
        headers={"User-Agent": user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"},
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout),
        follow_redirects=True,
        max_redirects=max_redirects,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        transport=transport,
    )
