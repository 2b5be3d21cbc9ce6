from __future__ import annotations

import contextlib
import gzip
import http.server
import threading
import zlib
from collections.abc import Callable

import httpx
import pytest

from citeline.ingest import (
    Crawler,
    CrawlLimits,
    CrawlScope,
    FetchedPage,
    FetchError,
    FetchFailure,
    TooLargeError,
    make_client,
    scope_prefix,
)
from citeline.ingest.bounded import read_bounded
from citeline.ingest.robots import RobotsCache
from citeline.ingest.safety import AddressPolicy
from citeline.ingest.scope import extract_links
from citeline.ingest.tdmrep import TdmRepCache
from tests.bombs import BOMBS, LIMIT, Trickle, bomb_response, peak_memory

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
    if path == "/docs/zip.html":
        return httpx.Response(200, content=b"PK\x03\x04", headers={"content-type": "application/zip"})
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
    [("/docs/zip.html", "not HTML or PDF (application/zip)"), ("/docs/big.html", "body larger than 1000 bytes")],
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


# --- robots.txt on every redirect hop, bounded bodies ---------------------------------------------

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"


class Recorder:
    """A MockTransport over ``routes`` (URL -> response factory) that records every URL requested."""

    def __init__(self, routes: dict[str, Callable[[], httpx.Response]]) -> None:
        self.routes = routes
        self.requested: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requested.append(str(request.url))
        route = self.routes.get(str(request.url))
        return route() if route else httpx.Response(404, text="not found")

    def crawler(self, *, robots: bool = True, **limits: int) -> tuple[Crawler, httpx.AsyncClient]:
        client = make_client(
            user_agent="citeline-test", connect_timeout=1, read_timeout=1, max_redirects=3, concurrency=1,
            transport=httpx.MockTransport(self.handle),
        )  # fmt: skip
        rules = RobotsCache(client, "citeline-test") if robots else None
        return Crawler(client, CrawlLimits(**limits), scope=CrawlScope(mode="host"), robots=rules), client


def redirect(location: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(302, headers={"Location": location})


@pytest.mark.parametrize(
    ("target", "robots_url"),
    [
        ("https://h.example/private/secret.html", "https://h.example/robots.txt"),
        ("https://other.example/private/secret.html", "https://other.example/robots.txt"),  # the hop's own origin
    ],
)
async def test_redirect_into_a_disallowed_path_is_never_requested(target: str, robots_url: str) -> None:
    site = Recorder(
        {
            "https://h.example/robots.txt": lambda: httpx.Response(200, text=ROBOTS_TXT),
            "https://other.example/robots.txt": lambda: httpx.Response(200, text=ROBOTS_TXT),
            "https://h.example/open.html": redirect(target),
            target: lambda: httpx.Response(200, html="<p>secret</p>"),
        }
    )
    c, client = site.crawler()
    async with client:
        _, failures = await collect(c, ["https://h.example/open.html"])
    failure = failures["https://h.example/open.html"]
    assert failure.kind == "robots"
    assert failure.reason == f"redirected to {target}, disallowed by robots.txt (parsed)"
    assert robots_url in site.requested
    assert target not in site.requested


async def test_redirect_to_an_allowed_path_is_followed_with_each_hop_checked() -> None:
    site = Recorder(
        {
            "https://h.example/robots.txt": lambda: httpx.Response(200, text=ROBOTS_TXT),
            "https://h.example/a.html": redirect("https://h.example/b.html"),
            "https://h.example/b.html": redirect("/c.html"),
            "https://h.example/c.html": lambda: httpx.Response(200, html="<p>here</p>"),
        }
    )
    c, client = site.crawler()
    async with client:
        pages, failures = await collect(c, ["https://h.example/a.html"])
    assert failures == {}
    assert pages["https://h.example/a.html"].final_url == "https://h.example/c.html"
    assert [u.removeprefix("https://h.example") for u in site.requested] == [
        "/robots.txt", "/a.html", "/b.html", "/c.html"
    ]  # fmt: skip


async def test_redirect_to_a_blocked_address_is_refused_before_any_request() -> None:
    site = Recorder({"https://h.example/go.html": redirect("http://169.254.169.254/latest/meta-data/")})
    c, client = site.crawler(robots=False)
    async with client:
        _, failures = await collect(c, ["https://h.example/go.html"])
    failure = failures["https://h.example/go.html"]
    assert failure.kind == "blocked"
    assert failure.reason.startswith("redirected to http://169.254.169.254/latest/meta-data/: blocked address")
    assert site.requested == ["https://h.example/go.html"]


def test_the_client_asks_only_for_encodings_read_with_a_bound() -> None:
    client = make_client(user_agent="t", connect_timeout=1, read_timeout=1, max_redirects=1, concurrency=1)
    assert client.headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("encoding", "kind", "reason"),
    [
        ("gzip", "size", "decompresses to more than 1000000 bytes"),
        ("br", "type", "unsupported content-encoding 'br'"),
    ],
)
async def test_bomb_served_as_a_page_is_read_with_a_bound(encoding: str, kind: str, reason: str) -> None:
    bomb_response(encoding, "text/html")
    site = Recorder({"https://h.example/bomb.html": lambda: bomb_response(encoding, "text/html")})
    c, client = site.crawler(robots=False, max_page_bytes=1_000_000)
    async with client:
        with peak_memory() as peak:
            _, failures = await collect(c, ["https://h.example/bomb.html"])
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    assert (failures["https://h.example/bomb.html"].kind, failures["https://h.example/bomb.html"].reason) == (
        kind,
        reason,
    )


async def test_a_redirect_body_is_never_read() -> None:
    bomb_response("br", "text/html")

    def moved() -> httpx.Response:
        response = bomb_response("br", "text/html", status=301)
        response.headers["location"] = "https://h.example/a.html"
        return response

    site = Recorder(
        {
            "https://h.example/moved.html": moved,
            "https://h.example/a.html": lambda: httpx.Response(200, html="<p>a</p>"),
        }
    )
    c, client = site.crawler(robots=False)
    async with client:
        with peak_memory() as peak:
            pages, _ = await collect(c, ["https://h.example/moved.html"])
    assert peak.heap < LIMIT, peak
    assert pages["https://h.example/moved.html"].final_url == "https://h.example/a.html"


class _BombHandler(http.server.BaseHTTPRequestHandler):
    """robots.txt, tdmrep.json and one page as bombs (encodings from the server's ``bombs``), one plain page."""

    def do_GET(self) -> None:
        bombs: dict[str, str] = self.server.bombs  # type: ignore[attr-defined]
        self.server.requested.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/ok.html":
            body, headers = b"<html><body><p>fine</p></body></html>", {"Content-Type": "text/html"}
        elif self.path in bombs:
            encoding = bombs[self.path]
            body = BOMBS[encoding]()
            headers = {"Content-Type": "text/html", "Content-Encoding": encoding}
        else:
            body, headers = b"not found", {"Content-Type": "text/plain"}
        self.send_response(200 if body != b"not found" else 404)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client hangs up once it has read enough
            self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize("robots_encoding", ["gzip", "br"])
async def test_bombs_over_a_real_loopback_connection(robots_encoding: str) -> None:
    bombs = {"/robots.txt": robots_encoding, "/.well-known/tdmrep.json": "br", "/bomb.html": "gzip"}
    for encoding in set(bombs.values()):
        BOMBS[encoding]()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BombHandler)
    server.bombs, server.requested = bombs, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        policy = AddressPolicy.from_strings(["127.0.0.1"])
        client = make_client(
            user_agent="citeline-test", connect_timeout=5, read_timeout=5, max_redirects=3, concurrency=2,
            policy=policy,
        )  # fmt: skip
        robots, tdm = RobotsCache(client, "citeline-test"), TdmRepCache(client)
        limits = CrawlLimits(max_page_bytes=1_000_000)
        crawler = Crawler(client, limits, robots=robots, tdm=tdm, policy=policy)
        async with client:
            with peak_memory() as peak:
                pages, failures = await collect(crawler, [f"{base}/ok.html", f"{base}/bomb.html"])
    finally:
        server.shutdown()
        server.server_close()
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    if robots_encoding == "gzip":  # zeros are no rules; the tdmrep.json bomb is ignored, so no reservation
        assert list(pages) == [f"{base}/ok.html"]
        assert failures[f"{base}/bomb.html"].reason == "decompresses to more than 1000000 bytes"
    else:
        assert pages == {}
        assert {f.kind for f in failures.values()} == {"robots"}
        assert "unsupported content-encoding 'br'" in failures[f"{base}/ok.html"].reason
        assert server.requested == ["/robots.txt"]  # type: ignore[attr-defined]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("", lambda d: d),
        ("identity", lambda d: d),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # what RFC 9110 calls deflate: a zlib stream
        ("deflate", _raw_deflate),  # what some servers send instead
        ("gzip", lambda d: gzip.compress(d[:500]) + gzip.compress(d[500:])),  # two members are one stream
        ("GZIP, identity", gzip.compress),
    ],
)
@pytest.mark.parametrize("size", [999, 1000, 1001])
async def test_read_bounded_decodes_exactly_up_to_the_cap(
    encoding: str, encode: Callable[[bytes], bytes], size: int
) -> None:
    data = bytes(range(256)) * 4
    body = data[:size] if size <= len(data) else data + b"x" * (size - len(data))
    response = httpx.Response(200, stream=Trickle(encode(body), chunk=7), headers={"content-encoding": encoding})
    if size <= 1000:
        assert await read_bounded(response, 1000, "https://h.example/") == body
    else:
        with pytest.raises(TooLargeError) as caught:
            await read_bounded(response, 1000, "https://h.example/")
        what = "body larger than" if encoding in ("", "identity") else "decompresses to more than"
        assert (caught.value.reason, caught.value.kind) == (f"{what} 1000 bytes", "size")


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip"])
async def test_read_bounded_refuses_encodings_it_cannot_bound(encoding: str) -> None:
    response = httpx.Response(200, stream=Trickle(b"\0" * 10), headers={"content-encoding": encoding})
    with pytest.raises(FetchError, match="unsupported content-encoding") as caught:
        await read_bounded(response, 1000, "https://h.example/")
    assert caught.value.kind == "type"


async def test_corrupt_compressed_body_is_a_clear_error() -> None:
    response = httpx.Response(200, stream=Trickle(b"not gzip at all"), headers={"content-encoding": "gzip"})
    with pytest.raises(FetchError, match="corrupt compressed body"):
        await read_bounded(response, 1000, "https://h.example/")


# --------------------------------------------------------------------------- markup lxml refuses as a str

XHTML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
    ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head>'
    '<body><div class="chapter">{links}</div></body></html>'
)
MANUAL = {
    "/manual/index.html": XHTML.format(title="Manual", links='<a href="ch01.html">1</a> <a href="ch02.html">2</a>'),
    "/manual/ch01.html": XHTML.format(title="Chapter 1", links='<a href="ch01s02.html">1.2</a>'),
    "/manual/ch01s02.html": XHTML.format(title="Section 1.2", links=""),
    "/manual/ch02.html": XHTML.format(title="Chapter 2", links=""),
    "/manual/blank.html": "  \n ",
}


def manual_crawler() -> Crawler:
    def serve(request: httpx.Request) -> httpx.Response:
        body = MANUAL.get(request.url.path)
        return httpx.Response(200, html=body) if body is not None else httpx.Response(404)

    client = make_client(
        user_agent="citeline-test", connect_timeout=1, read_timeout=1, max_redirects=3, concurrency=2,
        transport=httpx.MockTransport(serve),
    )  # fmt: skip
    return Crawler(client, CrawlLimits(per_host_delay=0))


async def test_pages_that_start_with_an_xml_declaration_are_crawled_from() -> None:
    pages, failures = await collect(manual_crawler(), ["http://m.example/manual/index.html"])
    assert failures == {}
    assert sorted(pages) == [f"http://m.example/manual/{name}.html" for name in ("ch01", "ch01s02", "ch02", "index")]


def test_links_of_a_page_that_starts_with_an_xml_declaration_are_read() -> None:
    page = MANUAL["/manual/index.html"]
    assert extract_links(page, "http://m.example/manual/index.html") == [
        "http://m.example/manual/ch01.html",
        "http://m.example/manual/ch02.html",
    ]
    assert extract_links("\ufeff" + page, "http://m.example/manual/") == extract_links(page, "http://m.example/manual/")


async def test_a_page_whose_links_cannot_be_read_is_a_failure_with_its_reason() -> None:
    pages, failures = await collect(manual_crawler(), ["http://m.example/manual/blank.html"])
    assert pages == {}
    failure = failures["http://m.example/manual/blank.html"]
    assert failure.kind == "error"
    assert failure.status == 200
    assert "unparsable HTML" in failure.reason
