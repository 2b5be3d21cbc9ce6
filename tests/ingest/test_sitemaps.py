"""citeline.ingest.sitemaps, and the capped download sitemaps and feeds share (ingest._listing)."""

from __future__ import annotations

import gzip
import struct
import zlib
from datetime import datetime

import httpx
import pytest

from citeline.ingest import FetchError, TooLargeError, make_client
from citeline.ingest.feeds import feed_urls
from citeline.ingest.sitemaps import sitemap_entries, sitemap_urls
from tests.bombs import LIMIT, bomb_response, peak_memory
from tests.ingest.sites import NS, Route, Site, index, urlset

MIB = 1 << 20


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MiB of zeros as one valid gzip member, built from a repeated flushed block (~200 KB, no 200 MiB buffer)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor forgets its history, so the next MiB compresses to a block
    # that can be repeated as is.
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(200):
        crc = zlib.crc32(bytes(MIB), crc)
    final_empty_block = b"\x03\x00"
    return first + block * 199 + final_empty_block + struct.pack("<II", crc, (200 * MIB) & 0xFFFFFFFF)


async def test_sitemap_urlset_in_document_order_deduplicated_with_lastmod() -> None:
    xml = (
        f"<urlset {NS}><url><loc>https://h.example/b</loc><lastmod>2024-05-06</lastmod></url>"
        "<url><loc> https://h.example/a </loc></url><url><loc>https://h.example/b</loc></url>"
        "<url><loc>https://H.example/a</loc></url></urlset>"
    )
    site = Site({"/sitemap.xml": xml.encode()})
    async with site.client() as client:
        result = await sitemap_entries(client, "https://h.example/sitemap.xml", max_urls=10)
        urls = await sitemap_urls(client, "https://h.example/sitemap.xml", max_urls=10)
    assert urls == ["https://h.example/b", "https://h.example/a"]
    assert [e.url for e in result.entries] == urls
    assert result.entries[0].lastmod == datetime(2024, 5, 6)
    assert result.entries[1].lastmod is None
    assert result.failures == []


async def test_sitemap_without_namespace() -> None:
    site = Site({"/s.xml": urlset("https://h.example/x", "https://h.example/y", ns="")})
    async with site.client() as client:
        assert await sitemap_urls(client, "https://h.example/s.xml", max_urls=10) == [
            "https://h.example/x",
            "https://h.example/y",
        ]


async def test_sitemap_index_with_gzipped_children() -> None:
    site = Site(
        {
            "/index.xml": index("https://h.example/one.xml", "https://h.example/two.xml.gz", "https://h.example/three"),
            "/one.xml": urlset("https://h.example/1", "https://h.example/2"),
            "/two.xml.gz": (gzip.compress(urlset("https://h.example/3")), {"content-type": "application/gzip"}),
            "/three": (gzip.compress(urlset("https://h.example/2", "https://h.example/4")), {"content-type": "x-gzip"}),
        }
    )
    async with site.client() as client:
        result = await sitemap_entries(client, "https://h.example/index.xml", max_urls=100)
    assert [e.url for e in result.entries] == [f"https://h.example/{n}" for n in (1, 2, 3, 4)]
    assert result.failures == []
    assert result.sitemaps_read == 4
    # Every document came through the caller's client: usp fetched nothing by itself.
    assert site.requested == ["/index.xml", "/one.xml", "/two.xml.gz", "/three"]


async def test_gzip_sent_with_content_encoding_is_read_once() -> None:
    # httpx undoes Content-Encoding; the .gz name must not make us gunzip a second time.
    body = gzip.compress(urlset("https://h.example/enc"))
    site = Site({"/s.xml.gz": (body, {"content-encoding": "gzip", "content-type": "application/xml"})})
    async with site.client() as client:
        assert await sitemap_urls(client, "https://h.example/s.xml.gz", max_urls=10) == ["https://h.example/enc"]


async def test_gzip_file_sent_gzip_encoded_is_unpacked_twice() -> None:
    body = gzip.compress(gzip.compress(urlset("https://h.example/twice")))
    site = Site({"/s.xml.gz": (body, {"content-encoding": "gzip", "content-type": "application/gzip"})})
    async with site.client() as client:
        assert await sitemap_urls(client, "https://h.example/s.xml.gz", max_urls=10) == ["https://h.example/twice"]


async def test_only_bounded_content_encodings_are_asked_for_and_accepted() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, stream=httpx.ByteStream(b"..."), headers={"content-encoding": "br"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(FetchError, match="unsupported content-encoding 'br'"):
            await sitemap_urls(client, "https://h.example/s.xml", max_urls=10)
    assert seen == ["gzip, deflate"]


async def test_response_read_by_the_transport() -> None:
    body = gzip.compress(urlset(*(f"https://h.example/{n}" for n in range(30))))
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body, headers={"content-encoding": "gzip"}))
    async with httpx.AsyncClient(transport=transport) as client:
        assert len(await sitemap_urls(client, "https://h.example/s.xml", max_urls=100)) == 30
        with pytest.raises(TooLargeError, match="body larger than 100 bytes"):
            await sitemap_urls(client, "https://h.example/s.xml", max_urls=100, max_bytes=100)


async def test_plain_text_sitemap() -> None:
    text = b"https://h.example/t1\n\n  https://h.example/t2  \nnot a url\nhttps://h.example/t1\n"
    site = Site({"/sitemap.txt": (text, {"content-type": "text/plain"})})
    async with site.client() as client:
        urls = await sitemap_urls(client, "https://h.example/sitemap.txt", max_urls=10)
    assert urls == ["https://h.example/t1", "https://h.example/t2"]


async def test_loop_in_sitemap_index_terminates() -> None:
    site = Site(
        {
            "/a.xml": index("https://h.example/b.xml", "https://h.example/a.xml"),
            "/b.xml": index("https://h.example/a.xml", "https://h.example/pages.xml"),
            "/pages.xml": urlset("https://h.example/p"),
        }
    )
    async with site.client() as client:
        result = await sitemap_entries(client, "https://h.example/a.xml", max_urls=10)
    assert [e.url for e in result.entries] == ["https://h.example/p"]
    assert site.requested == ["/a.xml", "/b.xml", "/pages.xml"]
    assert len(result.failures) == 2
    assert all("already read" in f.reason for f in result.failures)


async def test_sitemap_index_depth_is_capped() -> None:
    routes: dict[str, bytes | Route] = {f"/i{n}.xml": index(f"https://h.example/i{n + 1}.xml") for n in range(5)}
    site = Site(routes)
    async with site.client() as client:
        result = await sitemap_entries(client, "https://h.example/i0.xml", max_urls=10, max_depth=2)
    assert site.requested == ["/i0.xml", "/i1.xml", "/i2.xml"]
    assert [(f.url, "deeper than 2" in f.reason) for f in result.failures] == [("https://h.example/i3.xml", True)]


async def test_gzip_bomb_stops_at_the_cap(gzip_bomb: bytes) -> None:
    site = Site({"/bomb.xml.gz": (gzip_bomb, {"content-type": "application/gzip"})})
    async with site.client() as client:
        with pytest.raises(TooLargeError, match="decompresses to more than 5000000 bytes"):
            await sitemap_urls(client, "https://h.example/bomb.xml.gz", max_urls=10, max_bytes=5_000_000)


async def test_gzip_encoded_bomb_stops_at_the_cap(gzip_bomb: bytes) -> None:
    site = Site({"/s.xml": (gzip_bomb, {"content-encoding": "gzip", "content-type": "application/xml"})})
    async with site.client() as client:
        with pytest.raises(TooLargeError, match="decompresses to more than 1000000 bytes"):
            await sitemap_urls(client, "https://h.example/s.xml", max_urls=10, max_bytes=1_000_000)


async def test_gzip_bomb_in_an_index_costs_only_that_child(gzip_bomb: bytes) -> None:
    site = Site(
        {
            "/index.xml": index("https://h.example/bomb.xml.gz", "https://h.example/ok.xml"),
            "/bomb.xml.gz": gzip_bomb,
            "/ok.xml": urlset("https://h.example/ok"),
        }
    )
    async with site.client() as client:
        result = await sitemap_entries(client, "https://h.example/index.xml", max_urls=10, max_bytes=1_000_000)
    assert [e.url for e in result.entries] == ["https://h.example/ok"]
    assert [f.url for f in result.failures] == ["https://h.example/bomb.xml.gz"]
    assert "decompresses to more than" in result.failures[0].reason


async def test_download_cap_applies_before_decompression() -> None:
    site = Site({"/big.xml": urlset(*(f"https://h.example/{n}" for n in range(2000)))})
    async with site.client() as client:
        with pytest.raises(TooLargeError, match="body larger than 1000 bytes"):
            await sitemap_urls(client, "https://h.example/big.xml", max_urls=10, max_bytes=1000)


async def test_max_urls_stops_reading() -> None:
    site = Site(
        {
            "/index.xml": index("https://h.example/a.xml", "https://h.example/b.xml"),
            "/a.xml": urlset(*(f"https://h.example/a{n}" for n in range(50))),
            "/b.xml": urlset("https://h.example/b0"),
        }
    )
    async with site.client() as client:
        urls = await sitemap_urls(client, "https://h.example/index.xml", max_urls=5)
    assert urls == [f"https://h.example/a{n}" for n in range(5)]
    assert "/b.xml" not in site.requested


CUT_URLS = [f"https://h.example/c{n}" for n in range(300)]
_CUT_FULL = gzip.compress(urlset(*CUT_URLS))
CUT_GZIP = _CUT_FULL[: len(_CUT_FULL) // 2]


async def test_sitemap_errors() -> None:
    site = Site(
        {
            "/index.xml": index(
                "https://h.example/missing.xml", "https://h.example/page.html", "https://h.example/s.xml"
            ),
            "/page.html": (b"<html><body>hello</body></html>", {"content-type": "text/html"}),
            "/s.xml": urlset("https://h.example/s"),
            "/corrupt.xml.gz": b"\x1f\x8b\x08\x00garbage-garbage",
            "/cut.xml.gz": CUT_GZIP,
        }
    )
    async with site.client() as client:
        with pytest.raises(FetchError, match="corrupt gzip data"):
            await sitemap_urls(client, "https://h.example/corrupt.xml.gz", max_urls=10)
        # A cut-off sitemap still gives the entries that arrived whole.
        cut = await sitemap_urls(client, "https://h.example/cut.xml.gz", max_urls=1000)
        assert 0 < len(cut) < 300
        assert cut == CUT_URLS[: len(cut)]
        with pytest.raises(FetchError, match="HTTP 404") as info:
            await sitemap_urls(client, "https://h.example/missing.xml", max_urls=10)
        assert info.value.status == 404
        with pytest.raises(FetchError, match="not a sitemap"):
            await sitemap_urls(client, "https://h.example/page.html", max_urls=10)
        result = await sitemap_entries(client, "https://h.example/index.xml", max_urls=10)
    assert [e.url for e in result.entries] == ["https://h.example/s"]
    assert [(f.url, f.status) for f in result.failures] == [
        ("https://h.example/missing.xml", 404),
        ("https://h.example/page.html", None),
    ]


@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize("kind", ["sitemap", "feed"])
async def test_bomb_served_as_a_sitemap_or_feed_is_read_with_a_bound(encoding: str, kind: str) -> None:
    bomb_response(encoding, "application/xml")
    transport = httpx.MockTransport(lambda _: bomb_response(encoding, "application/xml"))
    reason = "decompresses to more than 1000000 bytes" if encoding == "gzip" else "unsupported content-encoding 'br'"
    read = sitemap_entries if kind == "sitemap" else feed_urls
    async with httpx.AsyncClient(transport=transport) as client:
        with peak_memory() as peak, pytest.raises(FetchError) as caught:
            await read(client, f"https://h.example/{kind}.xml", max_urls=10, max_bytes=1_000_000)
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    assert caught.value.reason == reason


async def test_a_sitemap_redirect_body_is_never_read() -> None:
    bomb_response("br", "text/html")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/sitemap.xml":
            response = bomb_response("br", "text/html", status=301)
            response.headers["location"] = "/real.xml"
            return response
        return httpx.Response(200, stream=httpx.ByteStream(urlset("https://h.example/p")))

    client = make_client(
        user_agent="t", connect_timeout=1, read_timeout=1, max_redirects=3, concurrency=1,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    async with client:
        with peak_memory() as peak:
            urls = await sitemap_urls(client, "https://h.example/sitemap.xml", max_urls=10)
    assert peak.heap < LIMIT, peak
    assert urls == ["https://h.example/p"]
