"""Non-crawl inputs: sitemaps and feeds (MockTransport, one loopback server), a local directory, WARC files."""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from datetime import datetime
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from warcio.archiveiterator import ArchiveIterator

from ingest import Crawler, CrawlLimits, FetchedPage, FetchError, FetchFailure, TooLargeError, make_client
from ingest.safety import AddressPolicy
from ingest.sources import (
    WarcRecorder,
    directory_pages,
    feed_urls,
    sitemap_entries,
    sitemap_urls,
    warc_pages,
)
from tests.bombs import LIMIT, bomb_response, peak_memory
from tests.conftest import serve_directory

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
MIB = 1 << 20


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


# --------------------------------------------------------------------------- sitemaps


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


# --------------------------------------------------------------------------- feeds

RSS = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>t</title><link>https://h.example/</link>
<item><title>1</title><link>/posts/one.html</link></item>
<item><title>2</title><link>https://h.example/posts/two.html</link></item>
<item><title>dup</title><link>https://h.example/posts/one.html</link></item>
<item><title>guid</title><guid>https://h.example/posts/three.html</guid></item>
<item><title>no permalink</title><guid isPermaLink="false">tag:h.example,1</guid></item>
<item><title>js</title><link>javascript:alert(1)</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://h.example/blog/">
<title>t</title><link rel="self" href="https://h.example/atom.xml"/>
<entry><title>1</title><link rel="enclosure" href="a.mp3"/>
  <link rel="alternate" type="text/html" href="a.html"/></entry>
<entry xml:base="2024/"><title>2</title><link href="b.html"/></entry>
<entry><title>3</title><link rel="alternate" href="https://other.example/c"/></entry>
</feed>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://h.example/"><title>t</title><link>https://h.example/</link></channel>
<item rdf:about="https://h.example/r1"><title>1</title><link>https://h.example/r1</link></item>
<item rdf:about="https://h.example/r2"><title>2</title></item>
</rdf:RDF>"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            RSS,
            [
                "https://h.example/posts/one.html",
                "https://h.example/posts/two.html",
                "https://h.example/posts/three.html",
            ],
            id="rss2",
        ),
        pytest.param(
            ATOM,
            ["https://h.example/blog/a.html", "https://h.example/blog/2024/b.html", "https://other.example/c"],
            id="atom",
        ),
        pytest.param(RDF, ["https://h.example/r1", "https://h.example/r2"], id="rss1-rdf"),
    ],
)
async def test_feed_links(body: bytes, expected: list[str]) -> None:
    site = Site({"/feed": (body, {"content-type": "application/xml"})})
    async with site.client() as client:
        assert await feed_urls(client, "https://h.example/feed", max_urls=10) == expected
        assert await feed_urls(client, "https://h.example/feed", max_urls=1) == expected[:1]


async def test_feed_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    feed = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{secret.as_uri()}"><!ENTITY y "expanded">]>'
        "<rss><channel><item><link>https://h.example/&x;</link></item>"
        "<item><link>https://h.example/&y;</link></item></channel></rss>"
    ).encode()
    site = Site({"/feed": feed})
    async with site.client() as client:
        urls = await feed_urls(client, "https://h.example/feed", max_urls=10)
    assert not any("SECRET" in u or "expanded" in u for u in urls)


async def test_not_a_feed() -> None:
    site = Site({"/page": (b"<html><body><item>x</item></body></html>", {"content-type": "text/html"})})
    async with site.client() as client:
        with pytest.raises(FetchError, match="not an RSS or Atom feed"):
            await feed_urls(client, "https://h.example/page", max_urls=10)
        with pytest.raises(FetchError, match="HTTP 404"):
            await feed_urls(client, "https://h.example/nothing", max_urls=10)


# --------------------------------------------------------------------------- local directory


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "guide" / "deep").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>home</body></html>", encoding="utf-8")
    (root / "guide" / "intro.htm").write_text("<p>intro</p>", encoding="utf-8")
    (root / "guide" / "deep" / "ünï cödé.html").write_text("<p>deep</p>", encoding="utf-8")
    (root / "guide" / "latin.html").write_bytes('<meta charset="iso-8859-1"><p>café naïve</p>'.encode("latin-1"))
    (root / "guide" / "notes.txt").write_text("not html")
    (root / "guide" / "logo.png").write_bytes(b"\x89PNG")
    (root / "binary.html").write_bytes(bytes(random.Random(7).randrange(256) for _ in range(3000)))
    outside = tmp_path / "outside.html"
    outside.write_text("<p>outside</p>")
    (root / "escape.html").symlink_to(outside)
    (root / "alias.html").symlink_to(root / "index.html")
    (root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    return root


def test_directory_pages(site_dir: Path) -> None:
    pages = list(directory_pages(site_dir, "https://docs.example/v1", max_pages=100))
    urls = [p.url for p in pages]
    assert urls == [
        "https://docs.example/v1/alias.html",
        "https://docs.example/v1/binary.html",
        "https://docs.example/v1/guide/deep/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.html",
        "https://docs.example/v1/guide/intro.htm",
        "https://docs.example/v1/guide/latin.html",
        "https://docs.example/v1/index.html",
    ]
    by_url = {p.url: p for p in pages}
    latin = by_url["https://docs.example/v1/guide/latin.html"]
    assert "café naïve" in latin.html
    assert by_url["https://docs.example/v1/alias.html"].html == "<html><body>home</body></html>"
    assert isinstance(by_url["https://docs.example/v1/binary.html"].html, str)
    index_page = by_url["https://docs.example/v1/index.html"]
    assert (index_page.status, index_page.final_url, index_page.depth) == (200, index_page.url, 0)
    mtime = (site_dir / "index.html").stat().st_mtime
    assert index_page.headers == {"content-type": "text/html", "last-modified": formatdate(mtime, usegmt=True)}


def test_directory_pages_limits(site_dir: Path) -> None:
    pages = list(directory_pages(site_dir, "https://docs.example/", max_pages=2))
    assert [p.url for p in pages] == ["https://docs.example/alias.html", "https://docs.example/binary.html"]
    small = list(directory_pages(site_dir, "https://docs.example/", max_pages=100, max_bytes=100))
    assert "https://docs.example/binary.html" not in {p.url for p in small}


def test_directory_pages_say_how_many_files_a_cap_left_out(site_dir: Path) -> None:
    left: list[int] = []
    pages = list(directory_pages(site_dir, "https://docs.example/", max_pages=2, on_cap=left.append))
    assert len(pages) == 2
    assert left == [5], "alias and binary read; five HTML files not (escape.html among them: never opened)"
    everything = list(directory_pages(site_dir, "https://docs.example/", on_cap=left.append))
    assert len(everything) == 6, "no cap unless one is asked for"
    assert left == [5]


def test_directory_page_encodings(tmp_path: Path) -> None:
    (tmp_path / "bom16.html").write_bytes("<p>ŝpecial</p>".encode("utf-16"))
    (tmp_path / "cp1252.html").write_bytes(
        b'<meta http-equiv="Content-Type" content="text/html; charset=latin1">\x93q\x94'
    )
    (tmp_path / "bogus.html").write_bytes(b'<meta charset="zlib"><p>caf\xc3\xa9</p>')
    (tmp_path / "guess.html").write_bytes("<p>Übergrößenträger für Straßenbahnen</p>".encode("cp1252") * 5)
    html = {p.url.rsplit("/", 1)[1]: p.html for p in directory_pages(tmp_path, "http://x/", max_pages=10)}
    assert html["bom16.html"] == "<p>ŝpecial</p>"
    assert html["cp1252.html"].endswith("“q”")  # latin-1 labels mean windows-1252, as in browsers
    assert html["bogus.html"] == '<meta charset="zlib"><p>café</p>'
    assert "Übergrößenträger" in html["guess.html"]


# --------------------------------------------------------------------------- WARC


def page(
    url: str, html: str, *, status: int = 200, content_type: str = "text/html", final_url: str = ""
) -> FetchedPage:
    return FetchedPage(
        url=url,
        final_url=final_url or url,
        status=status,
        html=html,
        headers={"content-type": content_type, "content-encoding": "gzip", "server": "test"},
        depth=0,
        elapsed=0.0,
    )


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_warc_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    latin = "<html><body><p>Crème brûlée</p></body></html>"
    with WarcRecorder(path) as recorder:
        recorder.record(
            page("https://h.example/a.html", latin, content_type="text/html; charset=iso-8859-1"),
            raw_body=latin.encode("latin-1"),
        )
        recorder.record(page("https://h.example/notes.txt", "plain", content_type="text/plain"), b"plain")
        recorder.record(page("https://h.example/gone.html", "<p>gone</p>", status=404))
        assert recorder.pages == 3
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")
    items = list(warc_pages(path, max_pages=10))
    assert len(items) == 1
    got = items[0]
    assert isinstance(got, FetchedPage)
    assert (got.url, got.final_url, got.status, got.html) == ("https://h.example/a.html", got.url, 200, latin)
    assert got.headers["content-type"] == "text/html; charset=iso-8859-1"
    assert got.headers["server"] == "test"
    assert "content-encoding" not in got.headers  # the stored body is decoded: replaying gzip would break it


def test_warc_keeps_requested_url_and_reencodes_text(tmp_path: Path) -> None:
    path = tmp_path / "r.warc.gz"
    moved = page(
        "https://h.example/old.html", "<p>naïve “quotes”</p>", final_url="https://h.example/new.html"
    )  # no raw body: stored as UTF-8 whatever the original charset
    with WarcRecorder(path) as recorder:
        recorder.record(moved)
    [got] = warc_pages(path, max_pages=10)
    assert isinstance(got, FetchedPage)
    assert (got.url, got.final_url, got.html) == (moved.url, moved.final_url, moved.html)
    assert got.headers["content-type"] == "text/html; charset=utf-8"
    with path.open("rb") as stream:
        targets = [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(stream)]
    assert targets == [None, "https://h.example/new.html", "https://h.example/new.html"]  # warcinfo, response, request


SITE = {
    "/docs/index.html": '<title>Home</title><a href="a.html">A</a> <a href="b.html">B</a>',
    "/docs/a.html": "<p>Alpha page</p>",
    "/docs/b.html": "<p>Beta page</p>",
}


async def test_recorded_crawl_reingests_the_same_pages(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        html = SITE.get(request.url.path)
        return httpx.Response(200, html=html) if html else httpx.Response(404, html="no")

    transport = httpx.MockTransport(handler)
    client = make_client(
        user_agent="t", connect_timeout=1, read_timeout=1, max_redirects=2, concurrency=2, transport=transport
    )
    crawled: dict[str, FetchedPage] = {}
    path = tmp_path / "crawl.warc.gz"
    async with client:
        with WarcRecorder(path) as recorder:
            async for item in Crawler(client, CrawlLimits(max_pages=10)).crawl(["http://h.example/docs/index.html"]):
                assert isinstance(item, FetchedPage)
                crawled[item.url] = item
                recorder.record(item)
    replayed = {p.url: p for p in warc_pages(path, max_pages=10) if isinstance(p, FetchedPage)}
    assert len(crawled) == 3
    assert {url: p.html for url, p in replayed.items()} == {url: p.html for url, p in crawled.items()}


def three_page_warc(path: Path) -> list[FetchedPage]:
    rng = random.Random(3)  # incompressible-ish bodies, so each record spans many bytes even gzipped
    pages = [
        page(f"https://h.example/{n}.html", "<p>" + "".join(rng.choices("abcdefgh ", k=4000)) + "</p>")
        for n in range(3)
    ]
    with WarcRecorder(path) as recorder:
        for p in pages:
            recorder.record(p)
    return pages


@pytest.mark.parametrize("name", ["t.warc.gz", "t.warc"])
def test_truncated_warc_yields_what_it_can_and_a_failure(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    pages = three_page_warc(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2500])  # inside the last response record
    items = list(warc_pages(path, max_pages=10))
    assert [(p.url, p.html) for p in items if isinstance(p, FetchedPage)] == [(p.url, p.html) for p in pages[:2]]
    failures = [f for f in items if isinstance(f, FetchFailure)]
    assert failures
    assert any("truncated" in f.reason or "cut off" in f.reason for f in failures)


@pytest.mark.parametrize("name", ["c.warc.gz", "c.warc"])
def test_every_cut_of_a_warc_is_reported_or_a_record_boundary(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    expected = {f"https://h.example/{n}.html": f"<p>page {n}</p>" * (n + 1) for n in range(3)}
    with WarcRecorder(path) as recorder:
        for url, html in expected.items():
            recorder.record(page(url, html))
    data = path.read_bytes()
    with path.open("rb") as stream:
        records = ArchiveIterator(stream)
        ends = [records.get_record_offset() + records.get_record_length() for _ in records]
    cut_file = tmp_path / f"cut-{name}"
    for cut in range(1, len(data), max(1, len(data) // 150)):
        cut_file.write_bytes(data[:cut])
        items = list(warc_pages(cut_file, max_pages=10))  # never raises
        pages = [p for p in items if isinstance(p, FetchedPage)]
        assert all(p.html == expected[p.url] for p in pages)
        at_boundary = any(end <= cut <= end + 4 for end in ends)  # a shorter WARC, valid as it stands
        assert at_boundary or any(isinstance(f, FetchFailure) for f in items), cut


@pytest.mark.parametrize("name", ["x.warc.gz", "x.warc"])
def test_corrupt_warc_yields_what_it_can_and_a_failure(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    pages = three_page_warc(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # inside the second response record
    data[middle : middle + 200] = b"\x00garbage\xff" * 20
    path.write_bytes(bytes(data))
    items = list(warc_pages(path, max_pages=10))
    got = [(p.url, p.html) for p in items if isinstance(p, FetchedPage)]
    assert got[:1] == [(pages[0].url, pages[0].html)]
    assert (pages[1].url, pages[1].html) not in got
    assert any(isinstance(f, FetchFailure) for f in items)


def test_not_a_warc_at_all(tmp_path: Path) -> None:
    path = tmp_path / "junk.warc"
    path.write_bytes(b"this is not a WARC file\r\n\r\nat all\n")
    items = list(warc_pages(path, max_pages=10))
    assert len(items) == 1
    assert isinstance(items[0], FetchFailure)
    assert items[0].url.startswith("file://")


def test_warc_max_pages(tmp_path: Path) -> None:
    path = tmp_path / "m.warc.gz"
    pages = three_page_warc(path)
    assert [p.url for p in warc_pages(path, max_pages=2) if isinstance(p, FetchedPage)] == [p.url for p in pages[:2]]
    left: list[int] = []
    assert len(list(warc_pages(path, max_pages=1, on_cap=left.append))) == 1
    assert left == [2], "the two responses after the cap are counted, not read as pages"
    assert len(list(warc_pages(path, on_cap=left.append))) == 3
    assert left == [2]


def test_recorder_outside_its_with_block(tmp_path: Path) -> None:
    recorder = WarcRecorder(tmp_path / "x.warc.gz")
    with pytest.raises(RuntimeError, match="with block"):
        recorder.record(page("https://h.example/", "<p>x</p>"))
    assert not (tmp_path / "x.warc.gz").exists()


async def test_loopback_sitemap_crawl_recorded_and_reingested(tmp_path: Path) -> None:
    """Real HTTP on 127.0.0.1: sitemap index -> gzipped sitemap -> crawl -> WARC -> pages again."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ("a", "b"):
        (site / f"{name}.html").write_text(f"<html><body><p>Page {name}</p></body></html>", encoding="utf-8")
    with serve_directory(site) as server:
        base = server.base_url
        (site / "index.xml").write_bytes(index(f"{base}pages.xml.gz"))
        (site / "pages.xml.gz").write_bytes(gzip.compress(urlset(f"{base}a.html", f"{base}b.html")))
        policy = AddressPolicy.from_strings(["127.0.0.1"])
        client = make_client(
            user_agent="t", connect_timeout=2, read_timeout=2, max_redirects=2, concurrency=2, policy=policy
        )
        warc = tmp_path / "loop.warc.gz"
        async with client:
            urls = await sitemap_urls(client, f"{base}index.xml", max_urls=10)
            assert urls == [f"{base}a.html", f"{base}b.html"]
            crawled = {}
            with WarcRecorder(warc) as recorder:
                async for item in Crawler(client, CrawlLimits(max_pages=10, max_depth=0), policy=policy).crawl(urls):
                    assert isinstance(item, FetchedPage)
                    crawled[item.url] = item.html
                    recorder.record(item)
    replayed = {p.url: p.html for p in warc_pages(warc, max_pages=10) if isinstance(p, FetchedPage)}
    assert replayed == crawled
    assert len(replayed) == 2


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
