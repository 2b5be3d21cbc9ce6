"""Stage 2: extract a page's main text and metadata with trafilatura."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import lxml.html
import trafilatura
from trafilatura.settings import Document

from citeline.ingest._exceptions import ExtractionError, MarkupError
from citeline.ingest.markup import one_tree_at_a_time, parse_html
from citeline.ingest.text import strip_invisible

# Sphinx and many static-site generators append a pilcrow link to every heading; it is
# decoration, and leaving it in would glue it to quoted spans. Invisible characters go too
# (ingest.text): they must never reach stored text or a citation quote.
_DECORATION = str.maketrans(dict.fromkeys("\u00b6"))
_SPACES = re.compile(r"[ \t\r\f\v]+")
# trafilatura renders list items as "- item"; the dash is not on the page, and a quote that
# contained it could not be found there (nor highlighted by a text fragment link).
_LIST_BULLET = re.compile(r"^- (?=\S)")
_MIN_CHARS = 40


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    title: str
    text: str
    """Main text, one block per line; passage offsets index into this string."""
    headings: frozenset[str]
    """Lines of ``text`` that are section headings."""
    author: str | None
    date: str | None
    sitename: str | None
    language: str | None
    content_hash: str
    """sha256 of ``text``: equal hashes mean nothing to re-embed."""
    license: str | None = None
    """What the page says its license is (``rel=license`` link, license/rights meta), when it says."""


def _clean(text: str) -> str:
    text = strip_invisible(text).translate(_DECORATION)
    lines = (_LIST_BULLET.sub("", _SPACES.sub(" ", line).strip()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)|font-size\s*:\s*0(?![.\d]*[1-9])|opacity\s*:\s*0(?![.\d]*[1-9])",
    re.I,
)


# Class names that CSS frameworks and site themes use to hide an element (Bootstrap, Tailwind,
# WordPress, HTML5 Boilerplate, Foundation, Bulma). Screen-reader-only text counts: a sighted
# reader never sees it, so it can smuggle instructions just as well as display:none.
_HIDDEN_CLASSES = frozenset(
    [
        "hidden",
        "hide",
        "is-hidden",
        "u-hidden",
        "invisible",
        "d-none",
        "display-none",
        "sr-only",
        "visually-hidden",
        "visuallyhidden",
        "screen-reader-text",
        "screen-reader-only",
        "show-for-sr",
        "element-invisible",
    ]
)
# "d-none d-md-block" and "hidden md:block" show the element on wider screens: it is visible text.
_SHOWN_AT_BREAKPOINT = re.compile(r"^(?:d-(?:sm|md|lg|xl|xxl)-(?!none$)[\w-]+|(?:sm|md|lg|xl|2xl):(?!hidden$)[\w-]+)$")


def _hidden_by_class(classes: str) -> bool:
    tokens = classes.lower().split()
    return any(t in _HIDDEN_CLASSES for t in tokens) and not any(_SHOWN_AT_BREAKPOINT.match(t) for t in tokens)


@one_tree_at_a_time
def drop_hidden(html: str) -> str:
    """Remove elements a reader never sees (inline-hidden, ``hidden``, ``aria-hidden``, a hiding class).

    Page text is untrusted: text hidden from people is a classic way to smuggle instructions to
    a model, and it is nothing a citation could ever show a reader anyway.
    """
    try:
        tree = parse_html(html)
    except MarkupError:
        return html  # nothing parses it: the extractor fails on it and says why
    hidden = [
        element
        for element in tree.iter()
        if isinstance(element.tag, str)
        and (
            element.get("hidden") is not None
            or element.get("aria-hidden", "").lower() == "true"
            or _HIDDEN_STYLE.search(element.get("style", ""))
            or _hidden_by_class(element.get("class", ""))
        )
    ]
    if not hidden:
        return html
    for element in hidden:
        element.drop_tree()  # keeps the element's tail text, which is visible
    return str(lxml.html.tostring(tree, encoding="unicode"))


@one_tree_at_a_time
def _html_title(html: str) -> str | None:
    try:
        title = parse_html(html).findtext(".//title")
    except MarkupError:
        return None
    return _clean(title).replace("\n", " ") if title else None


_LICENSE_XPATHS = (
    "//link[@rel='license']/@href",
    "//a[contains(concat(' ', normalize-space(@rel), ' '), ' license ')]/@href",
    "//meta[@name='license' or @name='dc.rights' or @name='DC.rights' or @name='dcterms.license'"
    " or @property='og:license' or @name='copyright']/@content",
)


@one_tree_at_a_time
def page_license(html: str, url: str) -> str | None:
    """The license a page declares in its markup (absolute URL for links), or None."""
    try:
        tree = parse_html(html)
    except MarkupError:
        return None
    for xpath in _LICENSE_XPATHS:
        for value in tree.xpath(xpath):
            text = " ".join(str(value).split())
            if text:
                return urljoin(url, text) if "//" in text or text.startswith("/") else text[:200]
    return None


def _meta(value: str | None) -> str | None:
    cleaned = _clean(value).replace("\n", " ") if value else ""
    return cleaned or None


@one_tree_at_a_time
def extract(html: str, url: str) -> ExtractedPage:
    """Return the page's main text and metadata, or raise ExtractionError."""
    if not html.strip():
        raise ExtractionError(url, "empty page")
    try:
        document = trafilatura.bare_extraction(
            drop_hidden(html),
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            include_formatting=False,
            favor_recall=True,
            deduplicate=False,
        )
    except Exception as exc:  # trafilatura raises a wide range of parser errors on broken markup
        raise ExtractionError(url, f"extractor failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(document, Document) or not document.text:
        raise ExtractionError(url, "no main text found")
    text = _clean(document.text)
    if len(text) < _MIN_CHARS:
        raise ExtractionError(url, f"main text too short ({len(text)} characters)")
    headings: set[str] = set()
    if document.body is not None:
        for head in document.body.iter("head"):
            heading = _clean("".join(head.itertext())).replace("\n", " ")
            if heading:
                headings.add(heading)
    title = _html_title(html) or (_clean(document.title) if document.title else "") or url
    return ExtractedPage(
        title=title,
        text=text,
        headings=frozenset(headings),
        author=_meta(document.author),
        date=document.date or None,
        sitename=_meta(document.sitename),
        language=document.language or None,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        license=page_license(html, url) or (document.license or None),
    )
