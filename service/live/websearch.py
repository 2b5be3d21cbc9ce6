"""Web search providers: turn a question into a query and return result URLs to fetch live.

:class:`SearxngSearch` speaks the JSON API of SearxNG, a self-hosted open-source metasearch engine
(``GET /search?q=...&format=json``; the instance must list ``json`` under ``search.formats``).
:class:`StaticSearch` is the deterministic fake for tests. Both satisfy :class:`SearchProvider`.
The provider is trusted configuration, so its own URL is not SSRF-checked; every result URL is,
when it is fetched. Its answer is still read like any page: only encodings that can be decoded with
a bound are accepted, at most ``max_bytes`` of JSON, within ``timeout_s`` in all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from citeline.ingest import FetchError
from citeline.ingest.bounded import ACCEPT_HEADERS, read_bounded
from citeline.service.exceptions import SearchError

_WORD = re.compile(r"[\w.+#/-]+")
# Question words and fillers a search engine does better without; content words are all kept.
_FILLERS = (
    "a an the is are was were be been do does did how what which who whom whose why when where can could"
    " should would will shall may might must i me my we our you your it its this that these those there"
    " of to in on for with by about please tell explain"
)
_FILLER = frozenset(_FILLERS.split())


@dataclass(frozen=True, slots=True)
class SearchResult:
    url: str
    title: str = ""
    snippet: str = ""


class SearchProvider(Protocol):
    """Finds pages for a query; the answer fetches and checks them like any live page."""

    name: str

    async def search(self, query: str, *, limit: int) -> list[SearchResult]: ...


def search_query(question: str, *, max_words: int = 12) -> str:
    """A keyword query from a question: fillers dropped, content words and code names kept in order."""
    words = _WORD.findall(question)
    kept = [w for w in words if w.lower().strip(".") not in _FILLER]
    return " ".join((kept or words)[:max_words])


class SearxngSearch:
    """A SearxNG instance's JSON API at ``base_url`` (``http://127.0.0.1:8888``).

    ``timeout_s`` bounds the whole exchange, ``max_bytes`` the decoded answer; redirects are not followed.
    """

    name = "searxng"

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 5.0,
        params: Mapping[str, str] | None = None,
        max_bytes: int = 2_000_000,
    ) -> None:
        self._endpoint = base_url.rstrip("/") + "/search"
        self._client = client
        self._timeout = timeout_s
        self._params = dict(params or {})
        self._max_bytes = max_bytes

    async def search(self, query: str, *, limit: int) -> list[SearchResult]:
        params = {"q": query, "format": "json", **self._params}
        try:
            async with asyncio.timeout(self._timeout):
                if self._client is not None:
                    status, content_type, body = await self._get(self._client, params)
                else:
                    async with httpx.AsyncClient(timeout=self._timeout) as client:
                        status, content_type, body = await self._get(client, params)
        except TimeoutError as exc:
            raise SearchError(f"search provider unreachable: no answer within {self._timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise SearchError(f"search provider unreachable: {type(exc).__name__}: {exc}") from exc
        except FetchError as exc:
            raise SearchError(f"search provider answer unreadable: {exc.reason}") from exc
        if status != 200:
            hint = " (is 'json' listed under search.formats in settings.yml?)" if status == 403 else ""
            raise SearchError(f"search provider answered HTTP {status}{hint}")
        try:
            items = json.loads(body)["results"]
        except (ValueError, KeyError, TypeError) as exc:
            html = "html" in content_type
            hint = " (an HTML page: is 'json' listed under search.formats in settings.yml?)" if html else ""
            raise SearchError(f"search provider answered no result list: {exc}{hint}") from exc
        if not isinstance(items, list):
            raise SearchError("search provider answered no result list: 'results' is not a list")
        return _results(items, limit)

    async def _get(self, client: httpx.AsyncClient, params: Mapping[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body of a 200 answer) of one request; the body read with a bound."""
        request = client.build_request(
            "GET", self._endpoint, params=params, headers=ACCEPT_HEADERS, timeout=self._timeout
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            body = await read_bounded(response, self._max_bytes, self._endpoint) if response.status_code == 200 else b""
            return response.status_code, response.headers.get("content-type", ""), body
        finally:
            await response.aclose()


def _results(items: Sequence[object], limit: int) -> list[SearchResult]:
    """http(s) results in rank order, one per URL, at most ``limit``."""
    out: list[SearchResult] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or url in seen:
            continue
        seen.add(url)
        out.append(SearchResult(url, str(item.get("title") or ""), str(item.get("content") or "")))
        if len(out) == limit:
            break
    return out


class StaticSearch:
    """A fake provider for tests: the same results for every query, and the queries it was asked."""

    name = "static"

    def __init__(self, results: Sequence[SearchResult]) -> None:
        self.results = list(results)
        self.queries: list[str] = []

    async def search(self, query: str, *, limit: int) -> list[SearchResult]:
        self.queries.append(query)
        return self.results[:limit]
