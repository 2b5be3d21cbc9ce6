"""SearxNG's JSON API through a mock transport: results, errors, what is sent."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.websearch import SearchError, SearxngSearch


def searxng(handler: httpx.MockTransport) -> SearxngSearch:
    return SearxngSearch("http://search.local/", client=httpx.AsyncClient(transport=handler))


def test_results_in_rank_order_deduplicated_and_capped() -> None:
    seen: list[httpx.URL] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"query": "q", "results": [
            {"url": "https://a.example/1", "title": "One", "content": "first"},
            {"url": "https://a.example/1", "title": "One again"},
            {"url": "ftp://a.example/x", "title": "not http"},
            {"title": "no url"},
            {"url": "https://b.example/2", "title": "Two"},
            {"url": "https://c.example/3", "title": "Three"},
        ]})  # fmt: skip

    results = asyncio.run(searxng(httpx.MockTransport(handle)).search("tomato sunlight", limit=2))
    assert [(r.url, r.title) for r in results] == [("https://a.example/1", "One"), ("https://b.example/2", "Two")]
    assert results[0].snippet == "first"
    assert seen[0].path == "/search"
    assert dict(seen[0].params) == {"q": "tomato sunlight", "format": "json"}


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(403, text="forbidden"), "search.formats"),
        (httpx.Response(500, text="oops"), "HTTP 500"),
        (httpx.Response(200, html="<html>not json</html>"), "an HTML page"),
        (httpx.Response(200, json={"results": "nope"}), "not a list"),
        (httpx.Response(200, json={"answers": []}), "no result list"),
    ],
)
def test_bad_answers_are_search_errors(response: httpx.Response, message: str) -> None:
    provider = searxng(httpx.MockTransport(lambda _: response))
    with pytest.raises(SearchError, match=message.replace(".", r"\.")):
        asyncio.run(provider.search("q", limit=3))


def test_unreachable_provider_is_a_search_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(SearchError, match="unreachable"):
        asyncio.run(searxng(httpx.MockTransport(refuse)).search("q", limit=3))
