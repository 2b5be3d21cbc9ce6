from __future__ import annotations

import httpx
import pytest

from ingest import Crawler, CrawlLimits, FetchedPage, FetchFailure, make_client, scope_prefix
from ingest.fetch import extract_links

PAGES = {
    "/docs/index.html": '<a href="a.html">A</a> <a href="sub/b.html#frag">B</a> <a href="/other/x.html">X</a>'
    '<a href="https://elsewhere.example/">E</a> <a href="img.png">img</a> <a href="missing.html">M</a>'
    '<a href="moved.html">moved</a> <a href="away.html">away</a> <a href="data.json">j</a>',
    "/docs/a.html": '<a href="index.html">back</a><a href="a.html">self</a>',
    "/docs/sub/b.html": '<a href="../a.html">A</a><a href="c.html">C</a>',
    "/docs/sub/c.html": "deep",
    "/docs/big.html": "x" * 5000,
}


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/docs/moved.html":
        return httpx.Response(301, headers={"Location": "/docs/a.html"})
    if path == "/docs/away.html":
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/"})
    if path == "/docs/pdf.html":
        return httpx.Response(200, content=b"%PDF", headers={"content-type": "application/pdf"})
    if path in PAGES:
        return httpx.Response(200, html=PAGES[path])
    return httpx.Response(404, html="not found")


def crawler(**limits: int | float) -> tuple[Crawler, httpx.AsyncClient]:
    client = make_client(
        user_agent="citeline-test",
        connect_timeout=1,
        read_timeout=1,
        max_redirects=3,
        concurrency=2,
        transport=httpx.MockTransport(handler),
    )
    return Crawler(client, CrawlLimits(**limits)), client  # type: ignore[arg-type]


async def collect(c: Crawler, seeds: list[str]) -> tuple[dict[str, FetchedPage], dict[str, FetchFailure]]:
    pages, failures = {}, {}
    async for item in c.crawl(seeds):
        if isinstance(item, FetchedPage):
            pages[item.url] = item
        else:
            failures[item.url] = item
    return pages, failures


def test_scope_prefix() -> None:
    assert scope_prefix("https://h.example/docs/index.html") == "https://h.example/docs/"
    assert scope_prefix("https://h.example/docs/") == "https://h.example/docs/"
    assert scope_prefix("https://H.example") == "https://h.example/"


def test_extract_links_resolves_and_drops_fragments() -> None:
    links = extract_links(PAGES["/docs/index.html"], "https://h.example/docs/index.html")
    assert "https://h.example/docs/sub/b.html" in links
    assert all("#" not in link for link in links)


async def test_crawl_stays_in_scope_and_reports_failures() -> None:
    c, client = crawler(max_pages=50)
    async with client:
        pages, failures = await collect(c, ["https://h.example/docs/index.html"])
    assert set(pages) == {
        "https://h.example/docs/index.html",
        "https://h.example/docs/a.html",
        "https://h.example/docs/sub/b.html",
        "https://h.example/docs/sub/c.html",
        "https://h.example/docs/moved.html",
    }
    assert pages["https://h.example/docs/moved.html"].final_url == "https://h.example/docs/a.html"
    assert pages["https://h.example/docs/sub/c.html"].depth == 2
    assert failures["https://h.example/docs/missing.html"].reason == "HTTP 404"
    assert failures["https://h.example/docs/missing.html"].status == 404
    assert "out of scope" in failures["https://h.example/docs/away.html"].reason
    assert not any("other" in url or "png" in url or "json" in url for url in [*pages, *failures])


async def test_max_pages_and_depth() -> None:
    c, client = crawler(max_pages=2)
    async with client:
        pages, failures = await collect(c, ["https://h.example/docs/index.html"])
    assert len(pages) + len(failures) == 2
    c, client = crawler(max_pages=50, max_depth=0)
    async with client:
        pages, failures = await collect(c, ["https://h.example/docs/index.html", "https://h.example/docs/sub/c.html"])
    assert set(pages) == {"https://h.example/docs/index.html", "https://h.example/docs/sub/c.html"}


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/docs/pdf.html", "not HTML (application/pdf)"), ("/docs/big.html", "body larger than 1000 bytes")],
)
async def test_type_and_size_checks(path: str, reason: str) -> None:
    c, client = crawler(max_pages=5, max_page_bytes=1000)
    async with client:
        _, failures = await collect(c, [f"https://h.example{path}"])
    assert failures[f"https://h.example{path}"].reason == reason


async def test_network_errors_become_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = make_client(
        user_agent="t", connect_timeout=1, read_timeout=1, max_redirects=2, concurrency=1,
        transport=httpx.MockTransport(refuse),
    )  # fmt: skip
    async with client:
        _, failures = await collect(Crawler(client, CrawlLimits()), ["https://dead.example/"])
    assert failures["https://dead.example/"].reason.startswith("network error: ConnectError")


async def test_redirect_loop_is_bounded() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/a" if request.url.path == "/b" else "/b"})

    client = make_client(
        user_agent="t", connect_timeout=1, read_timeout=1, max_redirects=3, concurrency=1,
        transport=httpx.MockTransport(loop),
    )  # fmt: skip
    async with client:
        _, failures = await collect(Crawler(client, CrawlLimits()), ["https://loop.example/a"])
    assert failures["https://loop.example/a"].reason == "too many redirects"


async def test_listed_urls_are_fetched_but_not_crawled_from() -> None:
    c, client = crawler(max_pages=50)
    async with client:
        pages = [item.url async for item in c.crawl([], listed=["https://h.example/docs/sub/b.html"])]
        assert pages == ["https://h.example/docs/sub/b.html"], "b links to a and c: neither is followed"
        mixed = [item.url async for item in c.crawl(["https://h.example/docs/sub/c.html"],
                                                    listed=["https://h.example/docs/a.html"])]  # fmt: skip
    assert sorted(mixed) == ["https://h.example/docs/a.html", "https://h.example/docs/sub/c.html"]
