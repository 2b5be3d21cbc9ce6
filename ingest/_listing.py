"""What sitemaps and feeds share: one document fetched through the caller's client with a cap, and
the URLs it lists kept once each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from citeline.ingest._exceptions import FetchError
from citeline.ingest.bounded import ACCEPT_HEADERS, gunzip_bounded, read_bounded, send_following
from citeline.ingest.scope import canonical

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Download:
    final_url: str
    body: bytes
    charset: str | None


async def fetch_document(client: httpx.AsyncClient, url: str, *, max_bytes: int) -> Download:
    """GET ``url`` through the caller's client; the body, gunzipped when it is gzip, is capped at ``max_bytes``."""
    try:
        # Content-Encoding is undone by ingest.bounded rather than by httpx, which would inflate each
        # network chunk whole (64 KiB of bomb -> 64 MiB) before any cap could look at it; redirects are
        # followed as the client says, without reading their bodies.
        response = await send_following(
            lambda request: client.send(request, stream=True, follow_redirects=False),
            client.build_request("GET", url, headers=ACCEPT_HEADERS),
            max_redirects=client.max_redirects if client.follow_redirects else None,
        )
        try:
            if response.status_code >= 400:
                raise FetchError(url, f"HTTP {response.status_code}", status=response.status_code)
            body = await read_bounded(response, max_bytes, url)
            final_url, charset = str(response.url), response.charset_encoding
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise FetchError(url, f"timed out ({type(exc).__name__})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FetchError(url, f"network error: {type(exc).__name__}: {exc}") from exc
    # Trust the bytes, not names or headers: servers label gzip files every which way. Two rounds,
    # because a ``.xml.gz`` file may also be sent with Content-Encoding: gzip.
    data = body
    for _ in range(2):
        if not data.startswith(_GZIP_MAGIC):
            break
        data, charset = await asyncio.to_thread(gunzip_bounded, data, max_bytes, url), None
    return Download(final_url, data, charset)


class UniqueUrls:
    """URLs in first-seen order, de-duplicated by their canonical form, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.urls: list[str] = []
        self._seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.urls) >= self.limit

    def add(self, url: str) -> bool:
        key = canonical(url)
        if self.full or key in self._seen:
            return False
        self._seen.add(key)
        self.urls.append(url)
        return True
