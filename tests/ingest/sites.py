"""Sitemap documents and a mock site that serves them, for the sitemap, feed and WARC tests."""

from __future__ import annotations

import httpx

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str, ns: str = NS) -> bytes:
    entries = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {ns}>{entries}</urlset>'.encode()


def index(*locs: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f"<sitemapindex {NS}>{entries}</sitemapindex>".encode()


Route = tuple[bytes, dict[str, str]]


class Site:
    """A MockTransport over a path -> (body, headers) table that remembers what was asked."""

    def __init__(self, routes: dict[str, bytes | Route]) -> None:
        self.routes = {path: value if isinstance(value, tuple) else (value, {}) for path, value in routes.items()}
        self.requested: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requested.append(request.url.path)
        if request.url.path not in self.routes:
            return httpx.Response(404, text="not found")
        body, headers = self.routes[request.url.path]
        # stream=, not content=: a response with content= arrives already read, unlike one off the network.
        return httpx.Response(200, stream=httpx.ByteStream(body), headers=headers)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url="https://h.example", transport=httpx.MockTransport(self.handler))
