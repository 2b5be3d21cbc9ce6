"""RSS and Atom feeds as a source of URLs: :func:`feed_urls` lists the item links for the crawler to fetch.

The feed is fetched through the caller's ``httpx.AsyncClient`` (robots, rate limits, address filtering
apply) and parsed with lxml, without entities or network.

Not feedparser: it parses and sanitises whole entries where only the links are wanted, and never rejects a non-feed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.etree

from citeline.ingest._exceptions import FetchError
from citeline.ingest._listing import UniqueUrls, fetch_document
from citeline.ingest.markup import one_tree_at_a_time

_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_FEED_ROOTS = frozenset({"rss", "feed", "RDF"})


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
    links = UniqueUrls(max_urls)
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
    document = await fetch_document(client, feed_url, max_bytes=max_bytes)
    return _feed_links(document.body, document.final_url, max_urls=max_urls)
