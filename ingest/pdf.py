"""PDF text extraction that keeps page boundaries, bounded in pages and time.

A PDF's stored text is its pages' text in order, each page followed by a line holding one form feed
(``\\f``, as ``pdftotext`` marks page ends). HTML extraction never keeps a form feed (``extract``
folds it into a space), so the form feeds are the page boundaries: the page of an offset is one
plus the form feeds before it, and the index computes it for each hit with no column of its own
(``indexes``: ``pdf_page``). The chunker never lets a passage cross a form feed, so a passage and
every quote cut from it lie on one page.

PDF bytes are hostile: pdfium is C++ and a crafted file may make it loop or crash. The parse runs
in a separate worker process (one, reused, serving one PDF at a time) that is killed when a PDF
takes longer than the deadline; a crash costs that PDF, never the crawl.
"""

from __future__ import annotations

import atexit
import multiprocessing
import re
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from citeline.ingest._exceptions import ExtractionError
from citeline.ingest.chunk import PAGE_BREAK
from citeline.ingest.text import strip_invisible

PDF_TYPE = "application/pdf"
_PDF_MAGIC = b"%PDF-"
_SPACES = re.compile(r"[ \t\v\u00a0]+")
# Controls pdfium emits for hyphenation and unmapped glyphs (\x02, \ufffe...); none are text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_MIN_CHARS = 40


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """Bounds of one PDF's extraction (the byte cap is the fetch's or the directory's)."""

    max_pages: int = 500
    """A PDF with more pages is skipped (a book of thousands of pages is seldom documentation)."""
    timeout_s: float = 60.0
    """Seconds one PDF's parse may take before its worker is killed."""


@dataclass(frozen=True, slots=True)
class PdfText:
    title: str | None
    author: str | None
    pages: list[str]


def _clean_page(text: str) -> str:
    text = _CONTROLS.sub("", strip_invisible(text.replace("\r\n", "\n").replace("\r", "\n")))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _parse(data: bytes, max_pages: int) -> PdfText | str:
    """The worker's job: the PDF's cleaned page texts, or why it has none (never raises)."""
    import pypdfium2 as pdfium  # only the worker process loads pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc).lower()
        if "password" in message:
            return "encrypted PDF (a password is needed to read it)"
        return f"malformed PDF ({exc})"
    try:
        count = len(document)
        if count > max_pages:
            return f"PDF has {count} pages, over the cap of {max_pages}"
        meta = document.get_metadata_dict(skip_empty=True)
        pages: list[str] = []
        for index in range(count):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    pages.append(_clean_page(textpage.get_text_range()))
                finally:
                    textpage.close()
            finally:
                page.close()
        return PdfText(meta.get("Title") or None, meta.get("Author") or None, pages)
    except pdfium.PdfiumError as exc:
        return f"malformed PDF ({exc})"
    finally:
        document.close()


def _serve(conn: Connection) -> None:
    """Worker loop: parse each ``(data, max_pages)`` received, send back the result."""
    while True:
        try:
            data, max_pages = conn.recv()
        except EOFError:
            return
        try:
            result: PdfText | str = _parse(data, max_pages)
        except Exception as exc:  # the worker must answer, whatever pdfium raised
            result = f"malformed PDF ({type(exc).__name__}: {exc})"
        conn.send(result)


class _Worker:
    """One pdfium process, started on first use and restarted after a kill; one PDF at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        # spawn, not fork: the parent has threads (asyncio's, the index's) a fork would copy mid-lock.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), daemon=True, name="citeline-pdf")
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = self._conn = None

    def parse(self, data: bytes, limits: PdfLimits) -> PdfText | str:
        with self._lock:
            conn = self._start()
            try:
                conn.send((data, limits.max_pages))
                if conn.poll(limits.timeout_s):
                    result: PdfText | str = conn.recv()
                    return result
            except (EOFError, OSError, BrokenPipeError):
                self._stop()
                return "PDF parser crashed on this file"
            self._stop()
            return f"PDF took over {limits.timeout_s:g} s to read"

    def close(self) -> None:
        with self._lock:
            self._stop()


_WORKER = _Worker()
atexit.register(_WORKER.close)


def close_worker() -> None:
    """Stop the PDF worker process (it is started again when needed)."""
    _WORKER.close()


def pdf_text(pages: list[str]) -> str:
    """The stored text of a PDF: every page, each followed by a line holding :data:`PAGE_BREAK`."""
    return "\n".join(f"{page}\n{PAGE_BREAK}" if page else PAGE_BREAK for page in pages)


def page_of(text: str, offset: int) -> int:
    """The 1-based PDF page of ``offset`` in a text made by :func:`pdf_text`."""
    return text.count(PAGE_BREAK, 0, offset) + 1


def read_pdf(data: bytes, url: str, limits: PdfLimits | None = None) -> PdfText:
    """The PDF's page texts and metadata, or ExtractionError saying why it cannot be read."""
    limits = limits or PdfLimits()
    if _PDF_MAGIC not in data[:1024]:  # the spec lets the header sit within the first KiB
        raise ExtractionError(url, "malformed PDF (no %PDF- header)")
    result = _WORKER.parse(data, limits)
    if isinstance(result, str):
        raise ExtractionError(url, result)
    chars = sum(len(page) for page in result.pages)
    if chars < _MIN_CHARS:
        raise ExtractionError(
            url, f"PDF has no text layer (image-only?): {chars} characters on {len(result.pages)} pages"
        )
    return result
