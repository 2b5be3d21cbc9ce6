"""Page markup parsed one way for every stage that reads it: links, hidden text, titles, licenses, meta tags.

Pages arrive decoded (``str``). lxml refuses a ``str`` that starts with an XML declaration naming an
encoding (``<?xml version="1.0" encoding="UTF-8"?>``, how DocBook and many other generated XHTML
manuals begin) with a ``ValueError``. Each stage used to catch that and carry on as if the page had
no links, no hidden text and no title, so such a site was crawled as one page with a "successful"
run. The declaration says nothing the decoded text still needs, so it is dropped before parsing;
what still cannot be parsed raises :class:`MarkupError` with lxml's reason, for the caller to
report.

libxml2 is not safe to use from two threads at once: pages are parsed on the crawler's event loop
(links, meta tags) while the pipeline extracts others on worker threads (trafilatura), and a resumed
ingest aborted with ``free(): invalid pointer`` in ``lxml.html.fromstring`` while trafilatura was
pruning a tree on another thread (the same crashes trafilatura users report for concurrent
``extract()`` calls). Every function that builds an lxml tree therefore runs under
:func:`one_tree_at_a_time`, and returns only plain Python values, so no tree is built, walked or
freed on two threads at once.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import lxml.etree
import lxml.html

from citeline.ingest._exceptions import MarkupError

# A byte-order mark may precede it when a page was decoded without stripping one.
_XML_DECLARATION = re.compile(r"\A[\s\ufeff]*<\?xml\b[^>]*\?>")


_P = ParamSpec("_P")
_R = TypeVar("_R")

# Re-entrant: extract() holds it while it calls drop_hidden() and page_license(), which take it too.
_LIBXML2 = threading.RLock()


def one_tree_at_a_time(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function`` run while no other thread of the process is in libxml2 (see the module docstring).

    Its trees must not outlive the call: they are freed when its frame is, inside the lock.
    """

    @functools.wraps(function)
    def serialised(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _LIBXML2:
            return function(*args, **kwargs)

    return serialised


def parse_html(html: str) -> lxml.html.HtmlElement:
    """``html`` parsed by lxml's HTML parser, without a leading XML declaration; MarkupError if it cannot be."""
    try:
        return lxml.html.fromstring(_XML_DECLARATION.sub("", html, count=1))
    except (ValueError, lxml.etree.ParserError) as exc:
        raise MarkupError(f"unparsable HTML: {exc}") from exc
