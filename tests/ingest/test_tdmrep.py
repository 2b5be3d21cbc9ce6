"""citeline.ingest.tdmrep: tdmrep.json parsed, matched and cached."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from citeline.ingest.tdmrep import TDMREP_MAX_BYTES, TdmRepCache, TdmRule, parse_tdmrep, tdm_lookup
from tests.bombs import LIMIT, bomb_response, peak_memory
from tests.ingest.polite import FakeClock, serving

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


async def test_tdmrep_cache_is_bounded() -> None:
    client, requested = serving({})
    async with client:
        tdm = TdmRepCache(client, max_origins=2)
        for n in range(50):
            await tdm.rules(f"https://s{n}.test/")
        assert len(tdm._cache) == 2
        assert tdm._cache.loading == 0
    assert len(requested) == 50
