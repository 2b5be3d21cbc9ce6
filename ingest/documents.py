"""Extraction of every kind of page a source yields: HTML (``extract``), PDF (``pdf``), and the
Markdown and plain-text files of a directory. Each gives an :class:`~ingest.extract.ExtractedPage`
whose text passages index into, so the rest of the pipeline never asks what a page was."""

from __future__ import annotations

import hashlib
import re

from citeline.ingest._exceptions import ExtractionError
from citeline.ingest.extract import ExtractedPage, extract
from citeline.ingest.fetch import FetchedPage
from citeline.ingest.pdf import PDF_TYPE, PdfLimits, pdf_text, read_pdf
from citeline.ingest.text import strip_invisible

MARKDOWN_TYPE = "text/markdown"
TEXT_TYPE = "text/plain"
_MIN_CHARS = 40
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
# ATX headings ("## Usage ##") and the underline of a setext heading ("Usage\n=====").
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _line(text: str) -> str:
    # A form feed is the PDF page mark (ingest.pdf): no other kind of text may keep one.
    return _SPACES.sub(" ", strip_invisible(text)).strip()


def _page(url: str, title: str, lines: list[str], headings: set[str]) -> ExtractedPage:
    text = "\n".join(line for line in lines if line)
    if len(text) < _MIN_CHARS:
        raise ExtractionError(url, f"main text too short ({len(text)} characters)")
    return ExtractedPage(
        title=title or url,
        text=text,
        headings=frozenset(headings),
        author=None,
        date=None,
        sitename=None,
        language=None,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def extract_markdown(source: str, url: str) -> ExtractedPage:
    """A Markdown file's text, one block per line; its ATX and setext headings become headings
    (the chunker starts passages at them), the first one its title. Markup other than headings is
    kept as written: a quote must be findable in the file."""
    lines: list[str] = []
    headings: set[str] = set()
    in_fence = False
    for raw in source.splitlines():
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        if not in_fence:
            atx = _ATX.match(raw)
            if atx:
                heading = _line(atx.group(2))
                if heading:
                    headings.add(heading)
                    lines.append(heading)
                continue
            if _SETEXT.match(raw) and lines and lines[-1]:  # underlines the line above: a heading
                headings.add(lines[-1])
                continue
        lines.append(_line(raw))
    title = next((line for line in lines if line in headings), "")
    return _page(url, title, lines, headings)


def extract_plain(source: str, url: str) -> ExtractedPage:
    """A plain-text file, line by line; its first line is its title."""
    lines = [_line(raw) for raw in source.splitlines()]
    title = next((line for line in lines if line), "")
    return _page(url, title[:200], lines, set())


def extract_pdf(data: bytes, url: str, limits: PdfLimits | None = None) -> ExtractedPage:
    """A PDF's text, page after page, each page ended by a form-feed line (``ingest.pdf``)."""
    pdf = read_pdf(data, url, limits)
    text = pdf_text(pdf.pages)
    first_line = next((line for page in pdf.pages for line in page.split("\n") if line), "")
    return ExtractedPage(
        title=_line(pdf.title or "") or first_line[:200] or url,
        text=text,
        headings=frozenset(),
        author=_line(pdf.author or "") or None,
        date=None,
        sitename=None,
        language=None,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def extract_fetched(page: FetchedPage, url: str, pdf_limits: PdfLimits | None = None) -> ExtractedPage:
    """Extract a fetched page of any kind, cited under ``url``; ExtractionError when it has no text."""
    if page.media_type == PDF_TYPE:
        return extract_pdf(page.data, url, pdf_limits)
    if page.media_type == MARKDOWN_TYPE:
        return extract_markdown(page.html, url)
    if page.media_type == TEXT_TYPE:
        return extract_plain(page.html, url)
    return extract(page.html, url)
