"""citeline.ingest.robots: robots.txt fetched, cached and matched."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from citeline.ingest._origin_cache import origin_of
from citeline.ingest.robots import RobotsCache, product_token
from tests.ingest.polite import ROBOTS, UA, FakeClock, robots_client, serving


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
