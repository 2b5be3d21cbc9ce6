"""Which URLs a crawl follows: canonical forms, a seed's scope, and the links of a page."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urldefrag, urljoin, urlsplit

from courlan import normalize_url

from citeline.ingest.markup import one_tree_at_a_time, parse_html


@dataclass(frozen=True, slots=True)
class CrawlScope:
    """Which discovered links a crawl follows.

    ``prefix`` keeps links under a seed's directory, ``host`` anywhere on a seed's host. ``allow``
    and ``deny`` are regular expressions searched in the URL: a link must match one ``allow`` (when
    any is given) and no ``deny``. Seeds themselves are always fetched.
    """

    mode: Literal["prefix", "host"] = "prefix"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def bounds(self, seeds: Iterable[str]) -> list[str]:
        if self.mode == "host":
            return sorted({f"{urlsplit(s).scheme}://{urlsplit(s).netloc}/" for s in seeds})
        return sorted({scope_prefix(s) for s in seeds})

    def follows(self, url: str, bounds: Sequence[str]) -> bool:
        if not any(url.startswith(prefix) for prefix in bounds):
            return False
        if self.allow and not any(re.search(pattern, url) for pattern in self.allow):
            return False
        return not any(re.search(pattern, url) for pattern in self.deny)


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


@one_tree_at_a_time
def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute http(s) links of a page, fragments removed, in document order.

    Raises MarkupError when the page cannot be parsed: a page whose links cannot be read is a
    failure with a reason, never a page without links."""
    tree = parse_html(html)
    base_href = tree.find(".//base[@href]")
    if base_href is not None:
        base_url = urljoin(base_url, base_href.get("href", ""))
    links: list[str] = []
    for href in tree.xpath("//a/@href"):
        absolute = urljoin(base_url, str(href).strip())
        if urlsplit(absolute).scheme in ("http", "https"):
            links.append(canonical(absolute))
    return links
