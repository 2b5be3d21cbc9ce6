"""Sitemaps as a source of URLs: XML urlsets and indexes, plain text, gzip, each walked with caps.

:func:`sitemap_urls` / :func:`sitemap_entries` return URL lists for the crawler to fetch. They fetch
through the caller's ``httpx.AsyncClient``, so whatever rules that client carries (robots, rate
limits, address filtering) apply to the sitemaps as well. Sitemap XML and text are parsed by
ultimate-sitemap-parser (``usp``) from bytes fetched here; usp is never allowed to fetch anything itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from usp.objects.sitemap import AbstractIndexSitemap, InvalidSitemap
from usp.tree import sitemap_from_str

from citeline.ingest._decode import decode_html
from citeline.ingest._exceptions import FetchError
from citeline.ingest._listing import UniqueUrls, fetch_document
from citeline.ingest.fetch import FetchFailure
from citeline.ingest.scope import canonical

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    lastmod: datetime | None = None
    """The entry's ``<lastmod>``, when it had a parseable one."""


@dataclass(slots=True)
class SitemapResult:
    entries: list[SitemapEntry] = field(default_factory=list)
    """Page URLs in document order (index children in their listed order), de-duplicated."""
    failures: list[FetchFailure] = field(default_factory=list)
    """Child sitemaps that could not be read or were not followed, with the reason."""
    sitemaps_read: int = 0


@dataclass(frozen=True, slots=True)
class _ParsedSitemap:
    entries: list[SitemapEntry]
    children: list[str]


def _parse_sitemap(text: str) -> _ParsedSitemap | None:
    """Parse one sitemap document (XML urlset or index, plain text, or a feed); None if it is none of them."""
    parsed = sitemap_from_str(text)
    if isinstance(parsed, InvalidSitemap):
        return None
    if isinstance(parsed, AbstractIndexSitemap):
        # usp cannot fetch the children (it has no web client here), so it lists each as an unfetched
        # InvalidSitemap that carries the child's URL: exactly what the walk below needs.
        return _ParsedSitemap([], [child.url for child in parsed.sub_sitemaps])
    return _ParsedSitemap([SitemapEntry(page.url, page.last_modified) for page in parsed.pages], [])


class _SitemapWalk:
    """Depth-first walk of a sitemap and its index children, in document order."""

    def __init__(
        self, client: httpx.AsyncClient, *, max_urls: int, max_bytes: int, max_depth: int, max_sitemaps: int
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._max_depth = max_depth
        self._max_sitemaps = max_sitemaps
        self._urls = UniqueUrls(max_urls)
        self._visited: set[str] = set()
        self.result = SitemapResult()

    async def visit(self, url: str, depth: int) -> None:
        """Read one sitemap; raise FetchError if it cannot be fetched or is not a sitemap."""
        self._visited.add(canonical(url))
        document = await fetch_document(self._client, url, max_bytes=self._max_bytes)
        self._visited.add(canonical(document.final_url))
        self.result.sitemaps_read += 1
        parsed = await asyncio.to_thread(_parse_sitemap, decode_html(document.body, document.charset))
        if parsed is None:
            raise FetchError(url, "not a sitemap (neither sitemap XML, plain text URLs nor a feed)")
        for entry in parsed.entries:
            if self._urls.full:
                break
            if self._urls.add(entry.url):
                self.result.entries.append(entry)
        for child in parsed.children:
            if self._urls.full:
                break
            await self._visit_child(child, depth + 1)

    async def _visit_child(self, url: str, depth: int) -> None:
        # A bad child costs only its own entries: the other children of the index are still read.
        if canonical(url) in self._visited:
            self.result.failures.append(FetchFailure(url, "sitemap already read (loop or repeat in sitemap index)"))
        elif depth > self._max_depth:
            self.result.failures.append(FetchFailure(url, f"sitemap indexes nested deeper than {self._max_depth}"))
        elif self.result.sitemaps_read >= self._max_sitemaps:
            self.result.failures.append(FetchFailure(url, f"more than {self._max_sitemaps} sitemaps"))
        else:
            try:
                await self.visit(url, depth)
            except FetchError as exc:
                log.warning("sitemap %s skipped: %s", url, exc.reason)
                self.result.failures.append(FetchFailure(url, exc.reason, exc.status))


async def sitemap_entries(
    client: httpx.AsyncClient,
    sitemap_url: str,
    *,
    max_urls: int,
    max_bytes: int = 50_000_000,
    max_depth: int = 5,
    max_sitemaps: int = 100,
) -> SitemapResult:
    """Page URLs (with lastmod) of a sitemap, following sitemap indexes.

    Reads XML sitemaps (sitemaps.org 0.9, with or without the namespace), sitemap indexes (children
    in listed order, up to ``max_depth`` levels and ``max_sitemaps`` documents, each read once),
    plain-text sitemaps (one URL a line), and gzip-compressed variants of each. ``max_bytes`` caps
    every document, downloaded and decompressed. Stops reading once ``max_urls`` URLs are found.

    Raises FetchError (TooLargeError past a cap) when ``sitemap_url`` itself cannot be read; a
    child sitemap that fails is skipped and listed in ``failures``.
    """
    walk = _SitemapWalk(client, max_urls=max_urls, max_bytes=max_bytes, max_depth=max_depth, max_sitemaps=max_sitemaps)
    await walk.visit(sitemap_url, 0)
    return walk.result


async def sitemap_urls(
    client: httpx.AsyncClient,
    sitemap_url: str,
    *,
    max_urls: int,
    max_bytes: int = 50_000_000,
    max_depth: int = 5,
    max_sitemaps: int = 100,
) -> list[str]:
    """The page URLs of :func:`sitemap_entries`; failed child sitemaps are logged and skipped."""
    result = await sitemap_entries(
        client, sitemap_url, max_urls=max_urls, max_bytes=max_bytes, max_depth=max_depth, max_sitemaps=max_sitemaps
    )
    return [entry.url for entry in result.entries]
