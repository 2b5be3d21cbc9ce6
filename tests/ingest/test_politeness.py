from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable

import httpx
import pytest

from ingest.politeness import (
    ROBOTS_MAX_BYTES,
    TDMREP_MAX_BYTES,
    HostPacer,
    RobotsCache,
    TdmRepCache,
    TdmRule,
    fetch_with_retries,
    opt_out_reason,
    origin_of,
    parse_retry_after,
    parse_tdmrep,
    product_token,
    robots_directives,
    tdm_lookup,
    tdm_reservation,
)
from tests.bombs import LIMIT, bomb_response, peak_memory

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


# --- helpers ------------------------------------------------------------------------------------


def test_product_token_and_origin() -> None:
    assert product_token(UA) == "citeline"
    assert product_token("Citeline-Test") == "citeline-test"
    with pytest.raises(ValueError):
        product_token("/0.1")
    assert origin_of("HTTPS://Site.Test:443/a?b#c") == "https://site.test"
    assert origin_of("http://site.test:8080/x") == "http://site.test:8080"
    assert origin_of("http://[::1]:81/") == "http://[::1]:81"
    with pytest.raises(ValueError):
        origin_of("ftp://site.test/")


# --- robots.txt ---------------------------------------------------------------------------------


async def test_robots_rules_for_our_group() -> None:
    client, _ = robots_client()
    robots = RobotsCache(client, UA)
    async with client:
        # our own group applies, so the * group's rules do not (RFC 9309 2.2.1)
        assert await robots.allowed("https://site.test/private/page.html")
        assert await robots.allowed("https://site.test/doc.pdf")
        assert not await robots.allowed("https://site.test/no-citeline/x.html")
        assert await robots.allowed("https://site.test/no-citeline/but-this/x.html")  # longer Allow wins
        assert not await robots.allowed("https://site.test/page?session=42")  # wildcard
        assert await robots.allowed("https://site.test/page?other=1")
        assert await robots.allowed("https://site.test/robots.txt")


async def test_robots_wildcards_dollar_and_allow_for_the_star_group() -> None:
    client, _ = robots_client()
    robots = RobotsCache(client, "somebot/2.0")
    async with client:
        assert not await robots.allowed("https://site.test/private/page.html")
        assert not await robots.allowed("https://site.test/files/doc.pdf")
        assert await robots.allowed("https://site.test/files/doc.pdf?download=1")  # `$` anchors at the end
        assert not await robots.allowed("https://site.test/search?q=x")
        assert await robots.allowed("https://site.test/search/about")  # Allow overrides the shorter Disallow
        assert await robots.allowed("https://site.test/docs/")
        other = RobotsCache(client, "otherbot")
        assert not await other.allowed("https://site.test/docs/")


async def test_equal_length_allow_beats_disallow() -> None:
    client, _ = robots_client("User-agent: *\nDisallow: /page\nAllow: /page\n")
    async with client:
        assert await RobotsCache(client, UA).allowed("https://site.test/page")


async def test_crawl_delay_sitemaps_and_effective_delay() -> None:
    client, _ = robots_client()
    async with client:
        ours, star = RobotsCache(client, UA), RobotsCache(client, "somebot")
        assert await ours.crawl_delay("https://site.test/") == 3.5
        assert await star.crawl_delay("https://site.test/") == 2.0
        assert await ours.effective_delay("https://site.test/", 1.0) == 3.5
        assert await ours.effective_delay("https://site.test/", 10.0) == 10.0
        assert await ours.sitemaps("https://site.test/x") == [
            "https://site.test/sitemap.xml",
            "https://site.test/relative-sitemap.xml",
        ]


async def test_no_crawl_delay_means_default() -> None:
    client, _ = robots_client("User-agent: *\nDisallow: /x\n")
    async with client:
        robots = RobotsCache(client, UA)
        assert await robots.crawl_delay("https://site.test/") is None
        assert await robots.effective_delay("https://site.test/", 1.0) == 1.0
        assert await robots.sitemaps("https://site.test/") == []


@pytest.mark.parametrize("status", [404, 401, 403, 410])
async def test_4xx_allows_everything(status: int) -> None:
    client, _ = robots_client("User-agent: *\nDisallow: /\n", status=status)
    async with client:
        robots = RobotsCache(client, UA)
        assert await robots.allowed("https://site.test/anything")
        assert (await robots.rules("https://site.test/")).outcome == f"HTTP {status}: allow all"


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_error_disallows_everything(status: int) -> None:
    client, _ = robots_client("", status=status)
    async with client:
        robots = RobotsCache(client, UA)
        assert not await robots.allowed("https://site.test/")
        assert not await robots.allowed("https://site.test/robots.txt")
        rules = await robots.rules("https://site.test/")
        assert rules.disallow_all
        assert rules.status == status


async def test_network_error_and_timeout_disallow_everything() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, _ = serving({"https://down.test/robots.txt": refuse, "https://slow.test/robots.txt": time_out})
    async with client:
        robots = RobotsCache(client, UA)
        assert not await robots.allowed("https://down.test/page")
        assert not await robots.allowed("https://slow.test/page")
        assert (await robots.rules("https://down.test/")).outcome == "unreachable (ConnectError): disallow all"
        assert (await robots.rules("https://slow.test/")).status is None


async def test_redirects_are_followed() -> None:
    client, requested = serving(
        {
            "https://site.test/robots.txt": httpx.Response(
                301, headers={"Location": "https://www.site.test/robots.txt"}
            ),
            "https://www.site.test/robots.txt": httpx.Response(200, text="User-agent: *\nDisallow: /x\n"),
        }
    )
    async with client:
        robots = RobotsCache(client, UA)
        assert not await robots.allowed("https://site.test/x")
        assert await robots.allowed("https://site.test/y")
    assert requested == ["https://site.test/robots.txt", "https://www.site.test/robots.txt"]


async def test_too_many_redirects_allows_everything() -> None:
    loop = httpx.Response(302, headers={"Location": "https://site.test/robots.txt"})
    client, requested = serving({"https://site.test/robots.txt": loop})
    async with client:
        assert await RobotsCache(client, UA).allowed("https://site.test/x")
    assert len(requested) == 6  # the first request and five redirects


async def test_body_is_capped_and_a_cut_line_dropped() -> None:
    body = "User-agent: *\nDisallow: /first\n" + "# padding\n" * 100 + "Disallow: /zzzzzzzzzz\n"
    cut = body.index("/zzzzzzzzzz") + 3  # the cap cuts the last rule to "Disallow: /zz"
    client, _ = robots_client(body)
    async with client:
        robots = RobotsCache(client, UA, max_bytes=cut)
        assert not await robots.allowed("https://site.test/first")
        assert await robots.allowed("https://site.test/zzzzzzzzzz")  # the last rule was past the cap
        assert await robots.allowed("https://site.test/zz-not-listed")  # and its first half was not kept


async def test_one_fetch_for_twenty_concurrent_callers() -> None:
    client, requested = robots_client()
    async with client:
        robots = RobotsCache(client, UA)
        results = await asyncio.gather(*(robots.allowed(f"https://site.test/p{i}") for i in range(20)))
        assert all(results)
        assert await robots.allowed("http://site.test/p")  # another scheme is another origin
    assert requested == ["https://site.test/robots.txt", "http://site.test/robots.txt"]


async def test_cache_expires_after_a_day() -> None:
    clock = FakeClock()
    client, requested = robots_client()
    async with client:
        robots = RobotsCache(client, UA, clock=clock)
        await robots.allowed("https://site.test/a")
        clock.now += 24 * 3600 - 1
        await robots.allowed("https://site.test/b")
        assert len(requested) == 1
        clock.now += 1
        await robots.allowed("https://site.test/c")
        assert len(requested) == 2


async def test_unreachable_is_asked_again_sooner() -> None:
    clock = FakeClock()
    answers = iter([httpx.Response(503), httpx.Response(200, text="User-agent: *\nDisallow: /x\n")])
    client, requested = serving({"https://site.test/robots.txt": lambda _: next(answers)})
    async with client:
        robots = RobotsCache(client, UA, clock=clock, error_max_age=600)
        assert not await robots.allowed("https://site.test/y")
        clock.now += 599
        assert not await robots.allowed("https://site.test/y")
        clock.now += 1
        assert await robots.allowed("https://site.test/y")
    assert len(requested) == 2


# --- pacing and back-off ------------------------------------------------------------------------


async def test_pacer_spaces_requests_per_host() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep)
    assert await pacer.wait("https://a.test/1") == 0
    assert await pacer.wait("https://a.test/2") == 1.0
    assert await pacer.wait("https://b.test/1") == 0  # hosts are paced apart
    clock.now += 0.25
    assert await pacer.wait("https://a.test/3") == 0.75
    clock.now += 5
    assert await pacer.wait("http://a.test:8080/4") == 0  # same host name, long enough ago
    assert clock.slept == [1.0, 0.75]


async def test_concurrent_waiters_get_distinct_turns() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    pacer = HostPacer(min_interval=0.5, clock=lambda: 0.0, sleep=record)
    await asyncio.gather(*(pacer.wait(f"https://a.test/{i}") for i in range(4)))
    assert sorted(slept) == [0.5, 1.0, 1.5]


async def test_pacer_honours_a_larger_crawl_delay() -> None:
    clock = FakeClock()
    client, _ = robots_client()
    async with client:
        pacer = HostPacer(robots=RobotsCache(client, UA), clock=clock, sleep=clock.sleep)
        await pacer.wait("https://site.test/1")
        assert await pacer.wait("https://site.test/2") == 3.5


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    clock = FakeClock()
    full = HostPacer(base_backoff=1.0, max_backoff=60.0, clock=clock, rand=lambda: 1.0)
    assert [full.backoff("https://a.test/", attempt) for attempt in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    half = HostPacer(base_backoff=1.0, clock=clock, rand=lambda: 0.5)
    assert half.backoff("https://a.test/", 3) == 4.0
    assert half.backoff("https://a.test/", 10_000) == 30.0  # no overflow on absurd attempt counts


def test_backoff_honours_retry_after() -> None:
    clock = FakeClock()
    wall = 1_700_000_000.0
    pacer = HostPacer(max_backoff=60.0, clock=clock, wall_clock=lambda: wall, rand=lambda: 1.0)
    assert pacer.backoff("https://a.test/", 0, "7") == 7.0
    in_20_s = email.utils.formatdate(wall + 20, usegmt=True)
    assert pacer.backoff("https://a.test/", 0, in_20_s) == pytest.approx(20.0)
    assert pacer.backoff("https://a.test/", 0, "3600") == 60.0  # capped
    assert pacer.backoff("https://a.test/", 2, "soon") == 4.0  # unreadable: exponential


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 -0000", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90.0)
    for bad in (None, "", "-5", "1.5", "tomorrow", "Mon, 99 Foo 2024"):
        assert parse_retry_after(bad, now=now) is None


async def test_backoff_pauses_the_host_for_every_caller() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, wall_clock=lambda: 0.0)
    await pacer.wait("https://a.test/1")
    pacer.backoff("https://a.test/1", 0, "10")
    assert await pacer.wait("https://a.test/other") == 10.0
    assert await pacer.wait("https://b.test/") == 0


def responses(
    *statuses: int, retry_after: str | None = None
) -> tuple[Callable[[], Awaitable[httpx.Response]], list[int]]:
    sent: list[int] = []
    queue = list(statuses)

    async def send() -> httpx.Response:
        status = queue.pop(0)
        sent.append(status)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return httpx.Response(status, headers=headers)

    return send, sent


async def test_fetch_with_retries_retries_then_succeeds() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, rand=lambda: 1.0)
    send, sent = responses(503, 429, 200)
    response = await fetch_with_retries(send, "https://a.test/p", pacer)
    assert response.status_code == 200
    assert sent == [503, 429, 200]
    assert clock.slept == [1.0, 2.0]  # the back-off of each attempt (longer than the 1 s spacing)


async def test_fetch_with_retries_gives_up_after_max() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, rand=lambda: 1.0, wall_clock=lambda: 0.0)
    send, sent = responses(503, 503, 503, 503, 200, retry_after="5")
    response = await fetch_with_retries(send, "https://a.test/p", pacer, max_retries=3)
    assert response.status_code == 503
    assert sent == [503, 503, 503, 503]
    assert clock.slept == [5.0, 5.0, 5.0]


async def test_fetch_with_retries_does_not_pass_over_a_long_retry_after() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep, wall_clock=lambda: 0.0, max_backoff=60)
    send, sent = responses(429, 200, retry_after="3600")
    response = await fetch_with_retries(send, "https://a.test/p", pacer)
    assert response.status_code == 429
    assert sent == [429]


async def test_fetch_with_retries_passes_other_statuses_through() -> None:
    clock = FakeClock()
    pacer = HostPacer(clock=clock, sleep=clock.sleep)
    send, sent = responses(404)
    assert (await fetch_with_retries(send, "https://a.test/p", pacer)).status_code == 404
    assert sent == [404]


# --- opt-outs in the response -------------------------------------------------------------------

PAGE = "<html><head><title>t</title>{meta}</head><body><p>text</p></body></html>"


def page(*metas: tuple[str, str]) -> str:
    return PAGE.format(meta="".join(f'<meta name="{name}" content="{content}">' for name, content in metas))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("noindex", "noindex"),
        ("NoIndex, nofollow", "noindex"),
        ("none", "noindex"),
        ("noai", "noai"),
        ("noimageai", "noimageai"),
        ("noindex, noai", "noai"),
        ("citeline: noindex", "noindex"),
        ("CiteLine: noai, noindex", "noai"),
        ("googlebot: noindex", None),
        ("googlebot: noindex, nofollow, noai", None),  # everything after the prefix is googlebot's
        ("googlebot: noindex, citeline: noai", "noai"),
        ("max-snippet: 20, noindex", "noindex"),
        ("unavailable_after: Wed, 03 Dec 2025 13:09:53 GMT", None),
        ("nofollow, noarchive", None),
        ("all", None),
    ],
)
def test_x_robots_tag(value: str, reason: str | None) -> None:
    assert opt_out_reason("https://a.test/", {"X-Robots-Tag": value}, page()) == reason


def test_repeated_x_robots_tag_headers_keep_their_scope() -> None:
    headers = httpx.Headers([("X-Robots-Tag", "googlebot: noindex"), ("X-Robots-Tag", "noai")])
    assert opt_out_reason("https://a.test/", headers, "") == "noai"
    assert opt_out_reason("https://a.test/", {"x-robots-tag": "googlebot: noindex"}, "") is None


@pytest.mark.parametrize(
    ("metas", "reason"),
    [
        ((("robots", "noindex, follow"),), "noindex"),
        ((("ROBOTS", "noai noimageai"),), "noai"),
        ((("robots", "noimageai"),), "noimageai"),
        ((("citeline", "noindex"),), "noindex"),
        ((("googlebot", "noindex"),), None),
        ((("robots", "index, follow"),), None),
        ((("description", "noindex"),), None),
        ((("tdm-reservation", "1"),), "tdm-reservation"),
        ((("tdm-reservation", "0"),), None),
        ((("tdm-reservation", "yes"),), None),
    ],
)
def test_meta_tags(metas: tuple[tuple[str, str], ...], reason: str | None) -> None:
    assert opt_out_reason("https://a.test/", {}, page(*metas)) == reason


def test_bot_specific_meta_uses_the_given_token() -> None:
    html = page(("citeline-test", "noai"))
    assert opt_out_reason("https://a.test/", {}, html) is None
    assert opt_out_reason("https://a.test/", {}, html, token="citeline-test") == "noai"


def test_html_edge_cases() -> None:
    xhtml = '<?xml version="1.0" encoding="utf-8"?>\n' + page(("robots", "noindex"))
    assert opt_out_reason("https://a.test/", {}, xhtml) == "noindex"
    assert opt_out_reason("https://a.test/", {}, "") is None
    assert opt_out_reason("https://a.test/", {}, "   ") is None
    assert opt_out_reason("https://a.test/", {}, "<p>no meta here</p>") is None
    assert robots_directives({}, page(("robots", "none"))) == {"none", "noindex", "nofollow"}


def test_tdm_header_and_precedence() -> None:
    html_reserved, html_free = page(("tdm-reservation", "1")), page(("tdm-reservation", "0"))
    assert opt_out_reason("https://a.test/", {"tdm-reservation": "1"}, page()) == "tdm-reservation"
    assert opt_out_reason("https://a.test/", {"TDM-Reservation": " 0 "}, page()) is None
    assert opt_out_reason("https://a.test/", {}, page(), tdmrep=True) == "tdm-reservation"
    # tdmrep.json < header < meta
    assert tdm_reservation({"tdm-reservation": "0"}, page(), tdmrep=True) is False
    assert tdm_reservation({"tdm-reservation": "0"}, html_reserved, tdmrep=None) is True
    assert tdm_reservation({"tdm-reservation": "1"}, html_free) is False
    assert tdm_reservation({"tdm-reservation": "2"}, page(), tdmrep=True) is True  # an invalid value is unset
    assert tdm_reservation({}, page()) is None
    # an AI-specific robots directive is named before the TDM reservation, which is named before noindex
    both = {"tdm-reservation": "1", "x-robots-tag": "noindex"}
    assert opt_out_reason("https://a.test/", both, page()) == "tdm-reservation"
    assert opt_out_reason("https://a.test/", {**both, "x-robots-tag": "noai"}, page()) == "noai"


# --- tdmrep.json --------------------------------------------------------------------------------

TDMREP = """[
  {"location": "/directory-a/", "tdm-reservation": 1},
  {"location": "/directory-b/images/*.jpg", "tdm-reservation": 0},
  {"location": "/directory-b/", "tdm-reservation": 1, "tdm-policy": "https://site.test/policy.json"},
  {"location": "/exact$", "tdm-reservation": 1},
  {"location": "/bad-value/", "tdm-reservation": 2},
  {"tdm-reservation": 1},
  "not a rule",
  {"location": "/%7Etilde/", "tdm-reservation": 1},
  {"location": "/Case/", "tdm-reservation": 1}
]"""


def test_tdmrep_patterns() -> None:
    rules = parse_tdmrep(TDMREP)
    assert [rule.location for rule in rules] == [
        "/directory-a/",
        "/directory-b/images/*.jpg",
        "/directory-b/",
        "/exact$",
        "/%7Etilde/",
        "/Case/",
    ]
    assert rules[2].policy == "https://site.test/policy.json"
    cases = {
        "https://site.test/directory-a/page.html": True,
        "https://site.test/directory-a": None,  # a prefix of the pattern is not a match
        "https://site.test/directory-b/images/cat.jpg": False,  # first matching rule wins
        "https://site.test/directory-b/images/cat.png": True,
        "https://site.test/directory-b/html/page.html": True,
        "https://site.test/exact": True,
        "https://site.test/exact/not": None,
        "https://site.test/bad-value/x": None,
        "https://site.test/~tilde/x": True,  # %7E and ~ are the same character
        "https://site.test/case/x": None,  # case-sensitive
        "https://site.test/elsewhere": None,
    }
    for url, expected in cases.items():
        assert tdm_lookup(rules, url) is expected, url


def test_tdm_rule_wildcards_and_queries() -> None:
    assert TdmRule("*.pdf$", True).matches("https://s.test/a/b.pdf")
    assert not TdmRule("*.pdf$", True).matches("https://s.test/a/b.pdf?x=1")
    assert TdmRule("/search?q=", True).matches("https://s.test/search?q=abc")
    assert TdmRule("/", True).matches("https://s.test")
    assert TdmRule("docs/*/draft", True).matches("https://s.test/docs/v1/draft/x")


@pytest.mark.parametrize("text", ["", "{}", '{"location": "/", "tdm-reservation": 1}', "[not json", "null"])
def test_tdmrep_malformed_files_have_no_rules(text: str) -> None:
    assert parse_tdmrep(text) == ()


async def test_tdmrep_cache_fetches_once_per_origin() -> None:
    client, requested = serving({"https://site.test/.well-known/tdmrep.json": httpx.Response(200, text=TDMREP)})
    async with client:
        tdm = TdmRepCache(client)
        checks = await asyncio.gather(
            tdm.tdm_reserved("https://site.test/directory-a/x"),
            tdm.tdm_reserved("https://site.test/directory-b/images/y.jpg"),
            tdm.tdm_reserved("https://site.test/free/z"),
            tdm.tdm_reserved("https://site.test/directory-b/z"),
        )
        assert list(checks) == [True, False, False, True]
        assert await tdm.reservation("https://site.test/directory-b/images/y.jpg") is False
        assert await tdm.reservation("https://site.test/free/z") is None
    assert requested == ["https://site.test/.well-known/tdmrep.json"]


async def test_tdmrep_missing_or_unreachable_means_no_reservation() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, requested = serving(
        {
            "https://down.test/.well-known/tdmrep.json": refuse,
            "https://broken.test/.well-known/tdmrep.json": httpx.Response(500, text="[]"),
            "https://html.test/.well-known/tdmrep.json": httpx.Response(200, html="<html>soft 404</html>"),
        }
    )
    async with client:
        tdm = TdmRepCache(client)
        for host in ("missing.test", "down.test", "broken.test", "html.test"):
            assert not await tdm.tdm_reserved(f"https://{host}/page"), host
            assert await tdm.rules(f"https://{host}/other") == (), host
    assert len(requested) == 4  # each answer is cached, a failure included


async def test_tdmrep_cache_expires() -> None:
    clock = FakeClock()
    client, requested = serving({"https://site.test/.well-known/tdmrep.json": httpx.Response(200, text=TDMREP)})
    async with client:
        tdm = TdmRepCache(client, max_age=60, clock=clock)
        await tdm.tdm_reserved("https://site.test/a")
        clock.now += 60
        await tdm.tdm_reserved("https://site.test/a")
    assert len(requested) == 2


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


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_bomb_served_as_tdmrep_json_is_read_with_a_bound(encoding: str, caplog: pytest.LogCaptureFixture) -> None:
    bomb_response(encoding, "application/json")
    url = "https://site.test/.well-known/tdmrep.json"
    client, _ = serving({url: lambda _: bomb_response(encoding, "application/json")})
    async with client:
        tdm = TdmRepCache(client)
        with peak_memory() as peak:
            assert await tdm.reservation("https://site.test/page") is None
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    reason = f"larger than {TDMREP_MAX_BYTES} bytes" if encoding == "gzip" else "unsupported content-encoding 'br'"
    assert f"{url} ignored: {reason}" in caplog.text


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


async def test_robots_cache_keeps_the_most_recently_used_origins() -> None:
    client, requested = serving({f"https://s{n}.test/robots.txt": httpx.Response(200, text=ROBOTS) for n in range(5)})
    async with client:
        robots = RobotsCache(client, UA, max_origins=3)
        for n in range(4):
            await robots.allowed(f"https://s{n}.test/a")
        await robots.allowed("https://s1.test/b")  # s1 is now the most recently used: s2 goes next
        await robots.allowed("https://s4.test/a")
        assert len(robots._cache) == 3
        assert robots._cache.loading == 0  # no lock is left behind per origin
        requested.clear()
        for n in (1, 3, 4):
            await robots.allowed(f"https://s{n}.test/c")
        assert requested == []  # still cached
        await robots.allowed("https://s2.test/c")
        assert requested == ["https://s2.test/robots.txt"]  # dropped, fetched again


async def test_robots_cache_is_bounded_in_bytes_and_keeps_the_newest() -> None:
    big = "User-agent: *\n" + "Disallow: /private-path-number-\n" * 2000
    client, requested = serving({f"https://s{n}.test/robots.txt": httpx.Response(200, text=big) for n in range(3)})
    async with client:
        robots = RobotsCache(client, UA, cache_bytes=len(big))  # less than one file's estimate
        for n in range(3):
            assert not await robots.allowed(f"https://s{n}.test/private-path-number-1")
        assert len(robots._cache) == 1
        assert robots._cache.size > len(big)  # the newest is kept even above the bound
        await robots.allowed("https://s2.test/a")
    assert len(requested) == 3


async def test_tdmrep_cache_is_bounded() -> None:
    client, requested = serving({})
    async with client:
        tdm = TdmRepCache(client, max_origins=2)
        for n in range(50):
            await tdm.rules(f"https://s{n}.test/")
        assert len(tdm._cache) == 2
        assert tdm._cache.loading == 0
    assert len(requested) == 50


async def test_pacer_remembers_a_bounded_number_of_hosts() -> None:
    clock = FakeClock()
    pacer = HostPacer(min_interval=1.0, clock=clock, sleep=clock.sleep, max_hosts=2)
    for n in range(100):
        await pacer.wait(f"https://h{n}.test/")
    assert len(pacer) == 2
    await pacer.wait("https://h99.test/again")  # the most recent hosts keep their turns
    assert clock.slept == [1.0]
