"""WARC archives: :func:`warc_pages` reads their HTML responses as fetched pages, :class:`WarcRecorder`
writes fetched pages into one.

:func:`warc_pages` yields a :class:`~ingest.fetch.FetchedPage` per HTML 2xx response and a
:class:`~ingest.fetch.FetchFailure` for each record it could not read, never an exception that loses
the rest of the file. The reader and the writer share the record layout (the requested-URI header,
the headers a replay must not repeat), hence one module.
"""

from __future__ import annotations

import contextlib
import http
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator  # type: ignore[import-untyped]
from warcio.statusandheaders import StatusAndHeaders  # type: ignore[import-untyped]
from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

from citeline.ingest._decode import decode_html
from citeline.ingest.fetch import DOCUMENT_TYPES, PDF_TYPE, FetchedPage, FetchFailure
from citeline.ingest.scope import canonical

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 64 * 1024
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
# A WARC response record is stored under the URL that answered; when a redirect led there, this
# extra header keeps the URL that was asked for, so a recorded crawl re-ingests under the same URLs.
_REQUESTED_URI = "Citeline-Requested-URI"
# The body a recorder stores is already decoded (httpx undoes these), so replaying them would corrupt it.
_NOT_REPLAYED = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def _content_type(value: str | None) -> tuple[str, str | None]:
    """(lower-case MIME type, charset parameter) of a Content-Type header value."""
    if not value:
        return "", None
    match = _CHARSET_PARAM.search(value)
    return value.split(";", 1)[0].strip().lower(), match.group(1) if match else None


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
    """A response record as a page, a failure, or None when it is not an HTML or PDF 2xx response."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    target = _target(record)
    if not target:
        return FetchFailure(where, "response record without WARC-Target-URI")
    status = _status(record.http_headers)
    if status is None:
        return FetchFailure(target, f"malformed HTTP status line {record.http_headers.statusline!r}")
    mime, charset = _content_type(record.http_headers.get_header("content-type"))
    if not 200 <= status < 300 or mime not in DOCUMENT_TYPES:
        return None
    return _warc_page(record, target, status, charset, max_bytes, is_pdf=mime == PDF_TYPE)


def _warc_page(
    record: Any, target: str, status: int, charset: str | None, max_bytes: int, *, is_pdf: bool = False
) -> FetchedPage | FetchFailure:
    started = time.perf_counter()
    try:
        body = _read_capped(record.content_stream(), max_bytes)
        missing = _missing_bytes(record) if len(body) <= max_bytes else 0
    except Exception as exc:  # warcio's chunked/gzip/brotli decoders each raise their own types
        return FetchFailure(target, f"unreadable body: {_brief(exc)}", status)
    if len(body) > max_bytes:
        return FetchFailure(target, f"body larger than {max_bytes} bytes", status, kind="size")
    if missing:
        return FetchFailure(target, f"record truncated: {missing} bytes missing", status)
    requested = str(record.rec_headers.get_header(_REQUESTED_URI) or target)
    return FetchedPage(
        url=canonical(requested),
        final_url=canonical(target),
        status=status,
        html="" if is_pdf else decode_html(body, charset),
        headers=_joined_headers(record.http_headers.headers),
        depth=0,
        elapsed=time.perf_counter() - started,
        media_type=PDF_TYPE if is_pdf else "text/html",
        data=body if is_pdf else b"",
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
    if raw_body is None and page.media_type == PDF_TYPE:
        raw_body = page.data  # a PDF is kept as received: its bytes are what it says they are
    elif raw_body is None:
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
