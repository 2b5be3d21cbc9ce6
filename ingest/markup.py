"""Page markup parsed one way for every stage that reads it: links, hidden text, titles, licenses, meta tags.

Pages arrive decoded (``str``). lxml refuses a ``str`` that starts with an XML declaration naming an
encoding (``<?xml version="1.0" encoding="UTF-8"?>``, how DocBook and many other generated XHTML
manuals begin) with a ``ValueError``. Each stage used to catch that and carry on as if the page had
no links, no hidden text and no title, so such a site was crawled as one page with a "successful"
run. The declaration says nothing the decoded text still needs, so it is dropped before parsing;
what still cannot be parsed raises :class:`MarkupError` with lxml's reason, for the caller to
report.
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html

# A byte-order mark may precede it when a page was decoded without stripping one.
_XML_DECLARATION = re.compile(r"\A[\s\ufeff]*<\?xml\b[^>]*\?>")


class MarkupError(ValueError):
    """The page's markup could not be parsed at all (an empty document, or bytes lxml rejects)."""


def parse_html(html: str) -> lxml.html.HtmlElement:
    """``html`` parsed by lxml's HTML parser, without a leading XML declaration; MarkupError if it cannot be."""
    try:
        return lxml.html.fromstring(_XML_DECLARATION.sub("", html, count=1))
    except (ValueError, lxml.etree.ParserError) as exc:
        raise MarkupError(f"unparsable HTML: {exc}") from exc
