"""Content owners' AI opt-outs in a response: ``X-Robots-Tag``, robots meta tags and TDMRep header and
meta, read by :func:`opt_out_reason` into why a page must not be kept (or None)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import httpx

from citeline.ingest._exceptions import MarkupError
from citeline.ingest.markup import one_tree_at_a_time, parse_html
from citeline.ingest.tdmrep import tdm_flag

DEFAULT_PRODUCT = "citeline"
"""The product token of the default user agent, for the opt-out checks when the caller names none."""
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex")
"""Robots directives that make a page off limits to citeline, as reason strings."""
_VALUED_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})
_BOT_NAME = re.compile(r"[a-z0-9_.-]+")
_META_TAG = re.compile(r"<meta\b", re.IGNORECASE)
_WORDS = re.compile(r"[\s,]+")


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive); repeated headers stay apart in ``httpx.Headers``."""
    if isinstance(headers, httpx.Headers):
        return headers.get_list(name)
    return [value for key, value in headers.items() if key.lower() == name]


def x_robots_directives(value: str, token: str) -> set[str]:
    """Directives of one ``X-Robots-Tag`` value that apply to the crawler ``token``, lower-cased.

    ``"noindex, nofollow"`` applies to every crawler; ``"googlebot: noindex, nofollow"`` only to
    googlebot (a bot prefix scopes the directives after it until the next prefix). Valued directives
    such as ``max-snippet: 20`` or ``unavailable_after: <date>`` are skipped.
    """
    token = token.lower()
    found: set[str] = set()
    scope: str | None = None
    for segment in value.lower().split(","):
        name, colon, rest = segment.partition(":")
        name, words = name.strip(), segment
        if colon:
            if name in _VALUED_DIRECTIVES or not _BOT_NAME.fullmatch(name):
                continue
            scope, words = name, rest
        if scope is None or scope == token:
            found.update(words.split())
    return found


@one_tree_at_a_time
def _meta_tags(html: str) -> list[tuple[str, str]]:
    """(lower-cased name, content) of every ``<meta name=... content=...>`` in ``html``."""
    if not html or not _META_TAG.search(html):
        return []
    try:
        tree = parse_html(html)
    except MarkupError:
        return []
    return [
        (str(meta.get("name")).strip().lower(), str(meta.get("content")))
        for meta in tree.xpath("//meta[@name and @content]")
    ]


def robots_directives(headers: Mapping[str, str], html: str, *, token: str = DEFAULT_PRODUCT) -> set[str]:
    """Robots directives for ``token`` from ``X-Robots-Tag`` headers and ``robots``/``<token>`` meta tags.

    ``none`` is expanded to ``noindex`` and ``nofollow``.
    """
    return _robots_directives(headers, _meta_tags(html), token.lower())


def _robots_directives(headers: Mapping[str, str], metas: Iterable[tuple[str, str]], token: str) -> set[str]:
    found: set[str] = set()
    for value in _header_values(headers, "x-robots-tag"):
        found |= x_robots_directives(value, token)
    for name, content in metas:
        if name in ("robots", token):
            found.update(word for word in _WORDS.split(content.lower()) if word)
    if "none" in found:
        found |= {"noindex", "nofollow"}
    return found


def tdm_reservation(headers: Mapping[str, str], html: str, *, tdmrep: bool | None = None) -> bool | None:
    """The page's TDM reservation under the TDMRep precedence: tdmrep.json < header < HTML meta.

    ``tdmrep`` is what the origin's tdmrep.json says for the URL (:meth:`TdmRepCache.reservation`).
    Returns True (reserved), False (explicitly not reserved) or None (unset).
    """
    return _tdm_reservation(headers, _meta_tags(html), tdmrep)


def _tdm_reservation(headers: Mapping[str, str], metas: Iterable[tuple[str, str]], tdmrep: bool | None) -> bool | None:
    value = tdmrep
    for header in _header_values(headers, "tdm-reservation")[-1:]:
        if (flag := tdm_flag(header.split(",")[-1])) is not None:
            value = flag
    for name, content in metas:
        if name == "tdm-reservation" and (flag := tdm_flag(content)) is not None:
            value = flag
    return value


def opt_out_reason(
    url: str,
    headers: Mapping[str, str],
    html: str,
    *,
    token: str = DEFAULT_PRODUCT,
    tdmrep: bool | None = None,
) -> str | None:
    """Why the owner of the page at ``url`` does not want citeline to keep it, or None if nothing says so.

    The reason is the first that applies of ``"noai"``, ``"noimageai"`` (``X-Robots-Tag`` or
    ``robots``/``<token>`` meta), ``"tdm-reservation"`` (TDMRep: ``tdmrep`` from the origin's
    tdmrep.json, overridden by a ``tdm-reservation`` header, overridden by the meta tag) and
    ``"noindex"`` (including ``none``). Directives scoped to another bot do not count. ``url`` is the
    page's address; the decision reads only ``headers`` (any Mapping; pass ``httpx.Headers`` to keep
    repeated headers apart) and ``html``.
    """
    metas = _meta_tags(html)
    directives = _robots_directives(headers, metas, token.lower())
    for directive in OPT_OUT_DIRECTIVES[:2]:
        if directive in directives:
            return directive
    if _tdm_reservation(headers, metas, tdmrep):
        return "tdm-reservation"
    return "noindex" if "noindex" in directives else None
