"""citeline.ingest._origin_cache: robots.txt and tdmrep.json are read with a bound, redirect bodies never."""

from __future__ import annotations

import httpx
import pytest

from citeline.ingest.robots import ROBOTS_MAX_BYTES, RobotsCache
from citeline.ingest.tdmrep import TdmRepCache
from tests.bombs import LIMIT, bomb_response, peak_memory
from tests.ingest.polite import UA, serving

# --- bounded reading and bounded caches ---------------------------------------------------------


async def test_robots_and_tdmrep_ask_only_for_encodings_read_with_a_bound() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, text="User-agent: *\nDisallow: /x\n")

    client, _ = serving({"https://site.test/robots.txt": record, "https://site.test/.well-known/tdmrep.json": record})
    async with client:
        await RobotsCache(client, UA).rules("https://site.test/")
        await TdmRepCache(client).rules("https://site.test/")
    assert seen == ["gzip, deflate", "gzip, deflate"]  # httpx's default would add br (and zstd)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_bomb_served_as_robots_txt_is_read_with_a_bound(encoding: str) -> None:
    bomb_response(encoding, "text/plain")  # built before measuring
    client, _ = serving({"https://site.test/robots.txt": lambda _: bomb_response(encoding, "text/plain")})
    async with client:
        robots = RobotsCache(client, UA)
        with peak_memory() as peak:
            rules = await robots.rules("https://site.test/page")
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    if encoding == "gzip":  # RFC 9309 2.5: the first 500 KiB are parsed (zeros: no rules), the rest ignored
        assert rules.outcome == f"parsed (its first {ROBOTS_MAX_BYTES} bytes; the rest ignored)"
        assert rules.allowed("https://site.test/page", robots.token)
    else:  # brotli was not asked for and cannot be bounded: as if the file were unreachable
        assert rules.outcome == "unreadable (unsupported content-encoding 'br'): disallow all"
        assert not rules.allowed("https://site.test/page", robots.token)


async def test_redirect_bodies_are_never_read() -> None:
    bomb_response("br", "text/html")

    def moved(_: httpx.Request) -> httpx.Response:
        response = bomb_response("br", "text/html", status=301)
        response.headers["location"] = "https://www.site.test/robots.txt"
        return response

    client, requested = serving(
        {
            "https://site.test/robots.txt": moved,
            "https://www.site.test/robots.txt": httpx.Response(200, text="User-agent: *\nDisallow: /x\n"),
        }
    )
    async with client:
        robots = RobotsCache(client, UA)
        with peak_memory() as peak:
            assert not await robots.allowed("https://site.test/x")
    assert peak.heap < LIMIT, peak
    assert requested == ["https://site.test/robots.txt", "https://www.site.test/robots.txt"]
