"""A robots.txt, a clock tests move, and mock origins, for the robots, pacing, retry and TDMRep tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

UA = "citeline/0.1 (+https://example.test/contact)"
ROBOTS = """\
User-agent: *
Disallow: /private/
Disallow: /*.pdf$
Disallow: /search
Allow: /search/about
Crawl-delay: 2

User-agent: citeline
Disallow: /no-citeline/
Allow: /no-citeline/but-this
Disallow: /*?session=
Crawl-delay: 3.5

User-agent: otherbot
Disallow: /

Sitemap: https://site.test/sitemap.xml
Sitemap: /relative-sitemap.xml
"""


class FakeClock:
    """A clock the test moves; its sleep records the delay and moves the clock by it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def serving(
    routes: dict[str, Callable[[httpx.Request], httpx.Response] | httpx.Response],
) -> tuple[httpx.AsyncClient, list[str]]:
    """A client over a MockTransport answering ``routes`` (by URL) and 404 otherwise; and the requested URLs."""
    requested: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        await asyncio.sleep(0)  # let concurrent callers interleave
        route = routes.get(str(request.url))
        if route is None:
            return httpx.Response(404, text="not found")
        if callable(route):
            return route(request)
        return httpx.Response(route.status_code, headers=route.headers, content=route.content)  # a fresh copy

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True, max_redirects=5)
    return client, requested


def robots_client(body: str = ROBOTS, status: int = 200) -> tuple[httpx.AsyncClient, list[str]]:
    return serving({"https://site.test/robots.txt": httpx.Response(status, text=body)})
