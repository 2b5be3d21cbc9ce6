"""citeline.ingest.warc: reading and recording WARC files."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import httpx
import pytest
from warcio.archiveiterator import ArchiveIterator

from citeline.ingest import Crawler, CrawlLimits, FetchedPage, FetchFailure, make_client
from citeline.ingest.safety import AddressPolicy
from citeline.ingest.sitemaps import sitemap_urls
from citeline.ingest.warc import WarcRecorder, warc_pages
from tests.conftest import serve_directory
from tests.ingest.sites import index, urlset


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
