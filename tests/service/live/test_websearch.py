"""SearxNG's JSON API through a mock transport: results, errors, what is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from citeline.service.live import SearchError, SearxngSearch
from tests.bombs import LIMIT, bomb_response, peak_memory


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


def test_only_encodings_read_with_a_bound_are_asked_for() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, json={"results": []})

    assert asyncio.run(searxng(httpx.MockTransport(handle)).search("q", limit=3)) == []
    # Also without an injected client: the provider the settings build makes its own.
    provider = SearxngSearch("http://search.local/")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.AsyncClient, "send", _recording_send(seen))
        asyncio.run(provider.search("q", limit=3))
    assert seen == ["gzip, deflate", "gzip, deflate"]


def _recording_send(seen: list[str]):
    async def send(self: httpx.AsyncClient, request: httpx.Request, **_: object) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, json={"results": []}, request=request)

    return send


@pytest.mark.parametrize(
    ("encoding", "reason"),
    [("gzip", "decompresses to more than 2000000 bytes"), ("br", "unsupported content-encoding 'br'")],
)
def test_bomb_answer_is_read_with_a_bound(encoding: str, reason: str) -> None:
    bomb_response(encoding, "application/json")
    provider = searxng(httpx.MockTransport(lambda _: bomb_response(encoding, "application/json")))
    with peak_memory() as peak, pytest.raises(SearchError, match=f"answer unreadable: {reason}"):
        asyncio.run(provider.search("q", limit=3))
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak


def test_slow_answer_is_bounded_in_time() -> None:
    async def drip(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100):
                await asyncio.sleep(0.05)
                yield b" "

        return httpx.Response(200, stream=_Stream(body()))

    provider = SearxngSearch(
        "http://search.local/", client=httpx.AsyncClient(transport=httpx.MockTransport(drip)), timeout_s=0.3
    )
    with pytest.raises(SearchError, match=r"no answer within 0\.3 s"):
        asyncio.run(provider.search("q", limit=3))


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk
