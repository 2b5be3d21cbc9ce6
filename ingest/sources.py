"""Inputs other than a crawl: sitemaps, feeds, a local directory and WARC archives.

Each source ends in what the crawler already produces, so the pipeline takes it unchanged:

* :func:`sitemap_urls` / :func:`sitemap_entries` and :func:`feed_urls` return URL lists for the
  crawler to fetch. They fetch through the caller's ``httpx.AsyncClient``, so whatever rules that
  client carries (robots, rate limits, address filtering) apply to the sitemaps and feeds as well.
* :func:`directory_pages` and :func:`warc_pages` yield :class:`~ingest.fetch.FetchedPage` objects
  directly; :func:`warc_pages` also yields a :class:`~ingest.fetch.FetchFailure` for each record it
  could not read, never an exception that loses the rest of the file.
* :class:`WarcRecorder` writes fetched pages to a WARC file, which :func:`warc_pages` reads back.

Sitemap XML and text are parsed by ultimate-sitemap-parser (``usp``) from bytes fetched here; usp
is never allowed to fetch anything itself. Feeds are parsed with lxml, without entities or network.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from io import BytesIO
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote, urljoin, urlsplit

import httpx
import lxml.etree
from usp.objects.sitemap import AbstractIndexSitemap, InvalidSitemap
from usp.tree import sitemap_from_str
from warcio.archiveiterator import ArchiveIterator  # type: ignore[import-untyped]
from warcio.statusandheaders import StatusAndHeaders  # type: ignore[import-untyped]
from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

from ingest._decode import decode_html
from ingest._exceptions import FetchError, TooLargeError
from ingest.bounded import ACCEPT_HEADERS, read_bounded, send_following
from ingest.fetch import HTML_TYPES, FetchedPage, FetchFailure, canonical
from ingest.markup import one_tree_at_a_time

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 64 * 1024
_HTML_SUFFIXES = (".html", ".htm")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_FEED_ROOTS = frozenset({"rss", "feed", "RDF"})
# A WARC response record is stored under the URL that answered; when a redirect led there, this
# extra header keeps the URL that was asked for, so a recorded crawl re-ingests under the same URLs.
_REQUESTED_URI = "Citeline-Requested-URI"
# The body a recorder stores is already decoded (httpx undoes these), so replaying them would corrupt it.
_NOT_REPLAYED = frozenset({"content-encoding", "transfer-encoding", "content-length"})


# --------------------------------------------------------------------------- shared helpers


@dataclass(frozen=True, slots=True)
class _Download:
    final_url: str
    body: bytes
    charset: str | None


async def _download(client: httpx.AsyncClient, url: str, *, max_bytes: int) -> _Download:
    """GET ``url`` through the caller's client; the body, gunzipped when it is gzip, is capped at ``max_bytes``."""
    try:
        # Content-Encoding is undone by ingest.bounded rather than by httpx, which would inflate each
        # network chunk whole (64 KiB of bomb -> 64 MiB) before any cap could look at it; redirects are
        # followed as the client says, without reading their bodies.
        response = await send_following(
            lambda request: client.send(request, stream=True, follow_redirects=False),
            client.build_request("GET", url, headers=ACCEPT_HEADERS),
            max_redirects=client.max_redirects if client.follow_redirects else None,
        )
        try:
            if response.status_code >= 400:
                raise FetchError(url, f"HTTP {response.status_code}", status=response.status_code)
            body = await read_bounded(response, max_bytes, url)
            final_url, charset = str(response.url), response.charset_encoding
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise FetchError(url, f"timed out ({type(exc).__name__})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(url, f"network error: {type(exc).__name__}: {exc}") from exc
    # Trust the bytes, not names or headers: servers label gzip files every which way. Two rounds,
    # because a ``.xml.gz`` file may also be sent with Content-Encoding: gzip.
    data = body
    for _ in range(2):
        if not data.startswith(_GZIP_MAGIC):
            break
        data, charset = await asyncio.to_thread(_gunzip, data, url=url, max_bytes=max_bytes), None
    return _Download(final_url, data, charset)


def _gunzip(data: bytes, *, url: str, max_bytes: int) -> bytes:
    """Decompress gzip (all members) but never past ``max_bytes`` of output: a bomb stops at the cap."""
    out = bytearray()
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending = data
    try:
        while pending:
            out.extend(decompressor.decompress(pending, max_bytes + 1 - len(out)))
            if len(out) > max_bytes:
                raise TooLargeError(url, f"decompresses to more than {max_bytes} bytes")
            if not decompressor.eof:
                pending = decompressor.unconsumed_tail
                continue
            pending = decompressor.unused_data
            if not pending.startswith(_GZIP_MAGIC):
                break
            decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise FetchError(url, f"corrupt gzip data: {exc}") from exc
    # A truncated stream leaves what decompressed so far; the parsers keep whatever entries are whole.
    return bytes(out)


def _content_type(value: str | None) -> tuple[str, str | None]:
    """(lower-case MIME type, charset parameter) of a Content-Type header value."""
    if not value:
        return "", None
    match = _CHARSET_PARAM.search(value)
    return value.split(";", 1)[0].strip().lower(), match.group(1) if match else None


class _UniqueUrls:
    """URLs in first-seen order, de-duplicated by their canonical form, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.urls: list[str] = []
        self._seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.urls) >= self.limit

    def add(self, url: str) -> bool:
        key = canonical(url)
        if self.full or key in self._seen:
            return False
        self._seen.add(key)
        self.urls.append(url)
        return True


# --------------------------------------------------------------------------- sitemaps


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
        self._urls = _UniqueUrls(max_urls)
        self._visited: set[str] = set()
        self.result = SitemapResult()

    async def visit(self, url: str, depth: int) -> None:
        """Read one sitemap; raise FetchError if it cannot be fetched or is not a sitemap."""
        self._visited.add(canonical(url))
        download = await _download(self._client, url, max_bytes=self._max_bytes)
        self._visited.add(canonical(download.final_url))
        self.result.sitemaps_read += 1
        parsed = await asyncio.to_thread(_parse_sitemap, decode_html(download.body, download.charset))
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


# --------------------------------------------------------------------------- feeds


def _feed_root(data: bytes, url: str) -> Any:
    # No entity expansion, no DTD, no network: a feed is untrusted input. recover=True because many
    # real feeds are not well-formed, and the entries before the damage are still worth having.
    parser = lxml.etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
    )
    try:
        root = lxml.etree.fromstring(data, parser, base_url=url)
    except lxml.etree.XMLSyntaxError:
        root = None
    if root is None or lxml.etree.QName(root).localname not in _FEED_ROOTS:
        raise FetchError(url, "not an RSS or Atom feed")
    return root


def _resolve(element: Any, href: str) -> str | None:
    """``href`` made absolute against the element's xml:base (or the feed URL); None unless http(s)."""
    absolute = urljoin(element.base or "", href.strip())
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _item_link(item: Any) -> str | None:
    """The link of an RSS item or Atom entry."""
    for link in item.iterchildren("{*}link"):
        href = link.get("href")
        if href is not None:  # Atom: <link href>, the page itself being rel="alternate" (the default)
            if link.get("rel", "alternate") == "alternate":
                return _resolve(link, href)
        elif link.text and link.text.strip():  # RSS 0.9x/1.0/2.0: <link>URL</link>
            return _resolve(link, link.text)
    if item.get(_RDF_ABOUT):  # RSS 1.0 names each item by its URL
        return _resolve(item, item.get(_RDF_ABOUT))
    guid = item.find("{*}guid")
    if guid is not None and guid.text and guid.get("isPermaLink", "true") == "true":
        return _resolve(guid, guid.text)
    return None


@one_tree_at_a_time
def _feed_links(data: bytes, url: str, *, max_urls: int) -> list[str]:
    root = _feed_root(data, url)
    links = _UniqueUrls(max_urls)
    for item in root.iter("{*}item", "{*}entry"):
        if links.full:
            break
        link = _item_link(item)
        if link:
            links.add(link)
    return links.urls


async def feed_urls(
    client: httpx.AsyncClient, feed_url: str, *, max_urls: int, max_bytes: int = 10_000_000
) -> list[str]:
    """Item links of an RSS 2.0, RSS 1.0 (RDF) or Atom feed, absolute, in feed order, de-duplicated.

    Relative links are resolved against xml:base and the feed's final URL. Raises FetchError when the
    feed cannot be fetched or is not a feed.
    """
    download = await _download(client, feed_url, max_bytes=max_bytes)
    return _feed_links(download.body, download.final_url, max_urls=max_urls)


# --------------------------------------------------------------------------- local directory


def _html_files(root: Path) -> list[PurePosixPath]:
    """HTML files under ``root``, relative, sorted. Symlinked directories are not entered (loops, escapes)."""
    found: list[PurePosixPath] = []
    for directory, _, files in os.walk(root, followlinks=False):
        relative = PurePosixPath(*Path(directory).relative_to(root).parts)
        found.extend(relative / name for name in files if name.lower().endswith(_HTML_SUFFIXES))
    return sorted(found)


def _directory_page(root: Path, relative: PurePosixPath, base_url: str, max_bytes: int) -> FetchedPage | None:
    path = root.joinpath(*relative.parts)
    started = time.perf_counter()
    try:
        if not path.resolve(strict=True).is_relative_to(root):
            log.warning("skipping %s: it links outside %s", path, root)
            return None
        stat = path.stat()
        if not path.is_file() or stat.st_size > max_bytes:  # FIFOs and devices would block or never end
            log.warning("skipping %s: not a regular file of at most %d bytes", path, max_bytes)
            return None
        data = path.read_bytes()
    except OSError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    # fsencode keeps file names that are not valid UTF-8 (surrogate-escaped) as their original bytes.
    url = canonical(base_url + quote(os.fsencode(str(relative)), safe="/"))
    return FetchedPage(
        url=url,
        final_url=url,
        status=200,
        html=decode_html(data),
        headers={"content-type": "text/html", "last-modified": formatdate(stat.st_mtime, usegmt=True)},
        depth=0,
        elapsed=time.perf_counter() - started,
    )


def directory_pages(
    root: Path,
    base_url: str,
    *,
    max_pages: int | None = None,
    max_bytes: int = 5_000_000,
    on_cap: Callable[[int], None] | None = None,
) -> Iterator[FetchedPage]:
    """Every ``*.html``/``*.htm`` file under ``root`` as a fetched page, in sorted path order.

    A page's URL is ``base_url`` + its percent-encoded POSIX path relative to ``root``. Files that
    cannot be read, are larger than ``max_bytes``, or are symlinks leading outside ``root`` are
    skipped with a logged warning. With ``max_pages``, reading stops after that many pages and
    ``on_cap`` is told how many files were left unread.
    """
    root = root.resolve(strict=True)
    prefix = base_url if base_url.endswith("/") else f"{base_url}/"
    yielded = 0
    files = _html_files(root)
    for position, relative in enumerate(files):
        if max_pages is not None and yielded >= max_pages:
            if on_cap is not None:
                on_cap(len(files) - position)
            return
        page = _directory_page(root, relative, prefix, max_bytes)
        if page is not None:
            yielded += 1
            yield page


# --------------------------------------------------------------------------- WARC reading


def _read_capped(stream: Any, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes: warcio's readers return at most one buffer per read()."""
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - len(data)))
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def _missing_bytes(record: Any) -> int:
    """Bytes the record's Content-Length promised but the file does not hold (a truncated record)."""
    while record.raw_stream.read(_READ_CHUNK):  # what the body readers left (a chunked decoder stops early)
        pass
    return int(getattr(record.raw_stream, "limit", 0) or 0)


def _joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " as httpx does."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _status(http_headers: Any) -> int | None:
    try:
        return int(http_headers.get_statuscode())
    except (TypeError, ValueError):
        return None


def _brief(exc: BaseException) -> str:
    """One line about an exception: warcio's messages can run to a screenful."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _target(record: Any) -> str:
    # Some writers wrap the URI in angle brackets (an error in an example of the WARC 1.0 spec).
    return str(record.rec_headers.get_header("WARC-Target-URI") or "").strip("<> ")


def _header_intact(record: Any) -> bool:
    # warcio reads a cut-off or garbled header as far as it goes: it then lacks a type, or the
    # Content-Length every WARC record must have, or that header is there without its number.
    if not record.rec_type or record.length is None:
        return False
    return record.format != "warc" or str(record.rec_headers.get_header("Content-Length") or "").strip().isdigit()


def _warc_item(record: Any, where: str, max_bytes: int) -> FetchedPage | FetchFailure | None:
    """A page or failure for one record; None for a whole record that is not an HTML 2xx response."""
    if not _header_intact(record):
        return FetchFailure(where, "unparseable WARC record header")
    item = _warc_response(record, where, max_bytes)
    if item is None and (missing := _missing_bytes(record)):
        return FetchFailure(_target(record) or where, f"{record.rec_type} record truncated: {missing} bytes missing")
    return item


def _warc_response(record: Any, where: str, max_bytes: int) -> FetchedPage | FetchFailure | None:
    """A response record as a page, a failure, or None when it is not an HTML 2xx response."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    target = _target(record)
    if not target:
        return FetchFailure(where, "response record without WARC-Target-URI")
    status = _status(record.http_headers)
    if status is None:
        return FetchFailure(target, f"malformed HTTP status line {record.http_headers.statusline!r}")
    mime, charset = _content_type(record.http_headers.get_header("content-type"))
    if not 200 <= status < 300 or mime not in HTML_TYPES:
        return None
    return _warc_page(record, target, status, charset, max_bytes)


def _warc_page(
    record: Any, target: str, status: int, charset: str | None, max_bytes: int
) -> FetchedPage | FetchFailure:
    started = time.perf_counter()
    try:
        body = _read_capped(record.content_stream(), max_bytes)
        missing = _missing_bytes(record) if len(body) <= max_bytes else 0
    except Exception as exc:  # warcio's chunked/gzip/brotli decoders each raise their own types
        return FetchFailure(target, f"unreadable body: {_brief(exc)}", status)
    if len(body) > max_bytes:
        return FetchFailure(target, f"body larger than {max_bytes} bytes", status)
    if missing:
        return FetchFailure(target, f"record truncated: {missing} bytes missing", status)
    requested = str(record.rec_headers.get_header(_REQUESTED_URI) or target)
    return FetchedPage(
        url=canonical(requested),
        final_url=canonical(target),
        status=status,
        html=decode_html(body, charset),
        headers=_joined_headers(record.http_headers.headers),
        depth=0,
        elapsed=time.perf_counter() - started,
    )


def _gzip_member_complete(stream: IO[bytes], start: int) -> bool:
    """Whether the gzip member at ``start`` ends with its trailer (a cut-off one does not)."""
    stream.seek(start)
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        while not decompressor.eof:
            data = decompressor.unconsumed_tail or stream.read(_READ_CHUNK)
            if not data:
                return False
            decompressor.decompress(data, _READ_CHUNK)  # output bounded and dropped: only the end matters
    except zlib.error:
        return False
    return True


def _unread_tail(stream: IO[bytes], last_start: int, last_end: int) -> str | None:
    """Why the file does not end cleanly after the last record, or None if it does.

    warcio stops without a word when a record's header is cut off, and reads a cut-off gzip member
    as far as it goes; both are truncations the caller should hear about.
    """
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(last_end)
    if stream.read(_READ_CHUNK).strip() or size - last_end > _READ_CHUNK:
        return f"{size - last_end} bytes after offset {last_end} hold no whole record (truncated or corrupt)"
    stream.seek(last_start)
    if last_end > last_start and stream.read(2) == _GZIP_MAGIC and not _gzip_member_complete(stream, last_start):
        return f"the last record (offset {last_start}) is cut off: its gzip stream does not end"
    return None


def _responses_left(records: Any) -> int:
    """How many ``response`` records the rest of a WARC holds (as many as can be read)."""
    left = 0
    # Corrupt data past the cap ends the count, not the run: it is what could be read.
    with contextlib.suppress(Exception):
        for record in records:
            left += record.rec_type == "response"
    return left


def warc_pages(
    path: Path,
    *,
    max_pages: int | None = None,
    max_bytes: int = 5_000_000,
    on_cap: Callable[[int], None] | None = None,
) -> Iterator[FetchedPage | FetchFailure]:
    """HTML 2xx ``response`` records of a WARC (``.warc`` or ``.warc.gz``) as fetched pages.

    Other records (requests, metadata, redirects, errors, non-HTML) are passed over silently. A
    record that is malformed, truncated or larger than ``max_bytes`` yields a FetchFailure (its URL:
    the record's target URI, else ``file:...#offset=N``) and reading goes on; data warcio cannot
    parse at all yields one FetchFailure (URL: the file's URI) and ends the file, since a WARC has
    no marker to resynchronise on. With ``max_pages``, reading stops after that many pages and
    ``on_cap`` is told how many ``response`` records were left unread.
    """
    uri = path.resolve().as_uri()
    pages = 0
    with path.open("rb") as stream:
        records = ArchiveIterator(stream)
        last = (0, 0)  # start and end offsets of the last record read
        try:
            for record in records:
                # While a record is current, warcio's offset is where it starts in the file.
                item = _warc_item(record, f"{uri}#offset={records.offset}", max_bytes)
                last = (records.get_record_offset(), records.get_record_offset() + records.get_record_length())
                if item is None:
                    continue
                yield item
                pages += isinstance(item, FetchedPage)
                if max_pages is not None and pages >= max_pages:
                    if on_cap is not None:
                        on_cap(_responses_left(records))
                    return
        except Exception as exc:  # warcio signals corrupt input with assorted exception types
            yield FetchFailure(uri, f"unreadable WARC data after offset {records.offset}: {_brief(exc)}")
            return
        problem = _unread_tail(stream, *last)
    if problem:
        yield FetchFailure(uri, problem)


# --------------------------------------------------------------------------- WARC writing


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _response_payload(page: FetchedPage, raw_body: bytes | None) -> tuple[bytes, list[tuple[str, str]]]:
    """The body to store and the HTTP headers that describe it."""
    headers = [(name, value) for name, value in page.headers.items() if name.lower() not in _NOT_REPLAYED]
    if raw_body is None:
        # Only the decoded text is at hand: store it as UTF-8 and say so, whatever the server sent.
        mime, _ = _content_type(_header(page.headers, "content-type"))
        headers = [(name, value) for name, value in headers if name.lower() != "content-type"]
        headers.append(("content-type", f"{mime or 'text/html'}; charset=utf-8"))
        raw_body = page.html.encode("utf-8")
    headers.append(("content-length", str(len(raw_body))))
    return raw_body, headers


def _request_line(url: str) -> StatusAndHeaders:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return StatusAndHeaders(f"GET {target} HTTP/1.1", [("Host", parts.netloc)], is_http_request=True)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class WarcRecorder:
    """Records fetched pages into a WARC file (gzip-compressed per record when the name ends in ``.gz``).

    Use as a context manager; each :meth:`record` writes a response record and its request record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pages = 0
        self._file: IO[bytes] | None = None
        self._writer: Any = None

    def __enter__(self) -> Self:
        self._file = self.path.open("wb")  # closed by __exit__
        try:
            self._writer = WARCWriter(self._file, gzip=self.path.name.endswith(".gz"), warc_version="1.1")
            info = {"software": "citeline", "format": "WARC File Format 1.1"}
            self._writer.write_record(self._writer.create_warcinfo_record(self.path.name, info))
        except BaseException:
            # __exit__ never runs when __enter__ raises.
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None

    def record(self, page: FetchedPage, raw_body: bytes | None = None) -> None:
        """Write ``page`` as a request/response pair under its final URL.

        ``raw_body`` is the body as received after transfer and content decoding (what httpx's
        ``aiter_bytes`` yields), in its original charset; without it the page's decoded HTML is
        stored as UTF-8 and the Content-Type says so.
        """
        if self._writer is None:
            raise RuntimeError("WarcRecorder.record called outside its with block")
        body, headers = _response_payload(page, raw_body)
        http_headers = StatusAndHeaders(f"{page.status} {_reason(page.status)}", headers, protocol="HTTP/1.1")
        extra = {_REQUESTED_URI: page.url} if page.url != page.final_url else {}
        # Explicit lengths: without them warcio spools each payload to a temporary file it never closes.
        response = self._writer.create_warc_record(
            page.final_url,
            "response",
            payload=BytesIO(body),
            length=len(body),
            http_headers=http_headers,
            warc_headers_dict=extra,
        )
        request = self._writer.create_warc_record(
            page.final_url, "request", payload=BytesIO(b""), length=0, http_headers=_request_line(page.final_url)
        )
        self._writer.write_request_response_pair(request, response)
        self.pages += 1
