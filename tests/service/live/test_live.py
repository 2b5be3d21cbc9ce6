"""Live pages at question time, through the HTTP API with fakes for the network, embedder and model.

The pages are served by an ``httpx.MockTransport`` (every request is recorded), the search by
:class:`StaticSearch`; the same paths run end to end with the real models in
``tests/e2e/test_live_pages.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from citeline.indexes import HashEmbedder, PageRecord, PassageIndex, PassageRecord
from citeline.ingest import extract
from citeline.service.api import create_app
from citeline.service.generation import ChatMessage, ScriptedGenerator
from citeline.service.live import LivePage, LivePageCache, SearchResult, StaticSearch, search_query, select_passages
from citeline.service.settings import ServiceSettings
from tests.bombs import LIMIT, bomb_response, peak_memory
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
SITE = "https://pages.example"


def html(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>"


TOMATO = html(
    "Growing tomatoes",
    "Tomato seedlings are planted outdoors two weeks after the last spring frost in your area.",
    "Tomatoes need at least six hours of direct sunlight every day to set fruit and ripen well.",
)
KETTLE_V1 = html(
    "Kettle manual",
    "The kettle switches itself off automatically when the water reaches one hundred degrees.",
    "Descale the kettle once a month with a mixture of water and white vinegar to remove limescale.",
)
KETTLE_V2 = html(
    "Kettle manual",
    "The kettle switches itself off automatically when the water reaches ninety five degrees.",
    "Descale the kettle every two weeks with citric acid dissolved in warm water to remove limescale.",
)


@dataclass
class Site:
    """Pages by path; ``requests`` records ``METHOD PATH`` of every request the transport saw."""

    pages: dict[str, tuple[int, str, dict[str, str]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    slow: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Callable[[], httpx.Response]] = field(default_factory=dict)
    """Responses made fresh per request (streamed bodies, as off a network), before ``pages``."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path in self.slow:
            await asyncio.sleep(self.slow[request.url.path])
        if request.url.path in self.raw:
            return self.raw[request.url.path]()
        status, body, headers = self.pages.get(request.url.path, (404, "not found", {}))
        etag = headers.get("etag")
        if etag and request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        content_type = "text/html; charset=utf-8" if status == 200 else "text/plain"
        return httpx.Response(status, text=body, headers={"content-type": content_type, **headers})

    def page_requests(self) -> list[str]:
        return [r for r in self.requests if not r.endswith(("/robots.txt", "/tdmrep.json"))]


def echo(messages: Sequence[ChatMessage]) -> str:
    """Quote the source line (of over five words) sharing most words with the question, and cite it."""
    prompt = messages[-1].content
    sources, question = prompt.split("Sources:\n", 1)[1].rsplit("Question:", 1)
    asked = set(re.findall(r"\w+", question.split("\n", 1)[0].lower()))
    lines = [
        (len(line.split()) > 5, len(asked & set(re.findall(r"\w+", line.lower()))), -int(number), number, line)
        for number, block in re.findall(r"\[(\d+)\] (.*?)(?=\n\n\[\d+\] |\Z)", sources, re.S)
        for line in block.split("\n")[1:]
    ]
    *_, number, line = max(lines)
    return f"{line} [{number}]"


@dataclass
class Harness:
    client: TestClient  # type: ignore[type-arg]
    site: Site
    search: StaticSearch
    data_dir: Path

    def ask(self, **body: Any) -> httpx.Response:
        response: httpx.Response = self.client.post("/v1/ask", json=body)
        return response


def stored_kettle(data_dir: Path) -> PageRecord:
    """The index's copy of the kettle manual: version 1, with its ETag."""
    extracted = extract(KETTLE_V1, f"{SITE}/kettle.html")
    page = PageRecord(
        url=f"{SITE}/kettle.html", title=extracted.title, text=extracted.text, content_hash=extracted.content_hash,
        fetched_at="2026-01-01T00:00:00Z", status=200, etag='"v1"',
    )  # fmt: skip
    lines, start, passages = extracted.text.split("\n"), 0, []
    for line in lines:
        passages.append(PassageRecord(start, start + len(line), line))
        start += len(line) + 1
    index = PassageIndex.create_or_open(data_dir, "docs", embedding_model=EMBEDDER.model_name, dimension=64)
    index.upsert_page(page, passages, EMBEDDER.embed([p.text for p in passages]))
    index.flush()
    index.close()
    return page


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    stored_kettle(tmp_path)
    site = Site(
        pages={
            "/tomato.html": (200, TOMATO, {}),
            "/kettle.html": (200, KETTLE_V1, {"etag": '"v1"'}),
        }
    )
    search = StaticSearch([SearchResult(f"{SITE}/tomato.html", "Growing tomatoes")])
    settings = ServiceSettings(
        data_dir=tmp_path, index="docs", top_k=2, live_budget_s=2.0, live_per_host_delay=0, respect_robots=True
    )
    app = create_app(
        settings,
        embedder=EMBEDDER,
        generator=ScriptedGenerator(echo),
        live_transport=httpx.MockTransport(site.handle),
        search=search,
    )
    with TestClient(app) as client:
        yield Harness(client, site, search, tmp_path)


def test_live_url_is_answered_and_cited_with_fetch_time_and_hash(harness: Harness) -> None:
    response = harness.ask(question="When are tomato seedlings planted outdoors?", urls=[f"{SITE}/tomato.html"],
                           sources="live")  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["abstained"] is False, body
    assert body["index"] == "live"
    citation = body["citations"][0]
    assert citation["url"] == f"{SITE}/tomato.html"
    assert citation["live"] == "url"
    text = extract(TOMATO, f"{SITE}/tomato.html").text
    assert citation["content_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert citation["fetched_at"].endswith("Z")
    live = body["live"]
    assert live["sources"] == "live"
    assert [(p["url"], p["origin"], p["cached"]) for p in live["pages"]] == [(f"{SITE}/tomato.html", "url", False)]
    assert live["skipped"] == []
    assert {r["url"] for r in body["retrieved"]} == {f"{SITE}/tomato.html"}


def test_both_ranks_index_and_live_pages_together(harness: Harness) -> None:
    body = harness.ask(question="When are tomato seedlings planted outdoors?", urls=[f"{SITE}/tomato.html"],
                       top_k=6).json()  # fmt: skip
    assert body["live"]["sources"] == "both"  # urls given: both is the default
    assert body["index"] == "docs"
    urls = [r["url"] for r in body["retrieved"]]
    assert set(urls) == {f"{SITE}/kettle.html", f"{SITE}/tomato.html"}  # one ranking over the two
    scores = [r["score"] for r in body["retrieved"]]
    assert scores[0] == max(scores)  # each source keeps its (MMR) order; the merge leads with the best
    assert body["citations"]
    for citation in body["citations"]:  # a live page's citations say so; the stored page's do not
        assert citation["live"] == ("url" if citation["url"].endswith("tomato.html") else None)


def test_a_fetched_page_replaces_its_stored_copy(harness: Harness) -> None:
    harness.site.pages["/kettle.html"] = (200, KETTLE_V2, {"etag": '"v2"'})
    body = harness.ask(question="At what temperature does the kettle switch off?", urls=[f"{SITE}/kettle.html"],
                       sources="both").json()  # fmt: skip
    retrieved = [r for r in body["retrieved"] if r["url"].endswith("kettle.html")]
    assert retrieved
    assert all("ninety five" in r["text"] or "citric" in r["text"] for r in retrieved)
    assert "ninety five" in body["answer"]


def test_slow_page_misses_the_budget_and_is_listed_not_waited_for(harness: Harness) -> None:
    harness.site.pages["/slow.html"] = (200, TOMATO.replace("Tomato", "Slow tomato"), {})
    harness.site.slow["/slow.html"] = 10.0
    started = time.monotonic()
    body = harness.ask(question="When are tomato seedlings planted outdoors?", budget_s=1.0, sources="live",
                       urls=[f"{SITE}/tomato.html", f"{SITE}/slow.html"]).json()  # fmt: skip
    assert time.monotonic() - started < 5
    assert [(s["url"], s["kind"]) for s in body["live"]["skipped"]] == [(f"{SITE}/slow.html", "budget")]
    assert "within the 1 s budget" in body["live"]["skipped"][0]["reason"]
    assert any("slow.html" in notice for notice in body["notices"])
    assert body["abstained"] is False
    assert {c["url"] for c in body["citations"]} == {f"{SITE}/tomato.html"}


@pytest.mark.parametrize(
    "refused",
    ["http://10.0.0.1/admin", "http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/",
     "file:///etc/passwd", "http://user@pages.example/", "http://[::1]/"],
)  # fmt: skip
def test_ssrf_refused_url_is_a_clear_error_and_nothing_is_fetched(harness: Harness, refused: str) -> None:
    response = harness.ask(question="When are tomatoes planted?", urls=[f"{SITE}/tomato.html", refused])
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["title"] == "URL refused"
    assert refused in problem["detail"]
    assert "nothing was fetched" in problem["detail"]
    assert harness.site.requests == []


def test_recheck_uses_the_current_text_of_a_changed_page_and_says_so(harness: Harness) -> None:
    harness.site.pages["/kettle.html"] = (200, KETTLE_V2, {"etag": '"v2"'})
    body = harness.ask(question="At what temperature does the kettle switch off?", recheck=True).json()
    assert harness.site.page_requests() == ["GET /kettle.html"]
    (recheck,) = body["live"]["rechecked"]
    assert recheck["outcome"] == "changed"
    assert recheck["indexed_at"] == "2026-01-01T00:00:00Z"
    assert recheck["current_hash"] != recheck["indexed_hash"]
    assert any("changed since it was indexed" in n for n in body["notices"])
    assert "ninety five" in body["answer"]
    citation = body["citations"][0]
    assert citation["changed_since_index"] is True
    assert citation["indexed_at"] == "2026-01-01T00:00:00Z"
    assert citation["live"] == "recheck"
    assert citation["url"] == f"{SITE}/kettle.html"
    assert all("one hundred" not in r["text"] for r in body["retrieved"])


def test_recheck_of_an_unchanged_page_is_a_conditional_get(harness: Harness) -> None:
    body = harness.ask(question="At what temperature does the kettle switch off?", recheck=True).json()
    (recheck,) = body["live"]["rechecked"]
    assert (recheck["outcome"], recheck["status"]) == ("unchanged", 304)
    assert body["notices"] == []
    assert body["citations"][0]["changed_since_index"] is False
    assert body["citations"][0]["live"] is None  # the stored text is current: it is what is quoted
    # Within the cache's lifetime a follow-up does not ask again.
    again = harness.ask(question="How often should the kettle be descaled?", recheck=True).json()
    assert again["live"]["rechecked"][0]["outcome"] == "unchanged"
    assert harness.site.page_requests() == ["GET /kettle.html"]


def test_recheck_of_a_gone_page_drops_its_passages(harness: Harness) -> None:
    del harness.site.pages["/kettle.html"]
    body = harness.ask(question="At what temperature does the kettle switch off?", recheck=True).json()
    assert body["live"]["rechecked"][0]["outcome"] == "gone"
    assert body["retrieved"] == []
    assert body["abstained"] is True
    assert any("is gone" in n for n in body["notices"])


def test_follow_up_question_reuses_the_cached_page(harness: Harness) -> None:
    url = f"{SITE}/tomato.html"
    harness.ask(question="When are tomato seedlings planted outdoors?", urls=[url], sources="live")
    body = harness.ask(question="How much sunlight do tomatoes need?", urls=[url], sources="live").json()
    assert harness.site.page_requests() == ["GET /tomato.html"]
    assert body["live"]["pages"][0]["cached"] is True
    assert body["abstained"] is False


def test_search_fetches_the_top_results(harness: Harness) -> None:
    body = harness.ask(question="How much sunlight do tomatoes need every day?", search=True).json()
    assert harness.search.queries == ["much sunlight tomatoes need every day"]
    assert body["live"]["search"]["results"] == [{"url": f"{SITE}/tomato.html", "title": "Growing tomatoes"}]
    assert body["live"]["pages"][0]["origin"] == "search"
    assert body["citations"][0]["live"] == "search"


def test_robots_disallowed_page_is_skipped(harness: Harness) -> None:
    harness.site.pages["/robots.txt"] = (200, "User-agent: *\nDisallow: /tomato", {})
    body = harness.ask(question="When are tomatoes planted?", urls=[f"{SITE}/tomato.html"], sources="live").json()
    assert [(s["kind"]) for s in body["live"]["skipped"]] == ["robots"]
    assert body["abstained"] is True
    assert "GET /tomato.html" not in harness.site.requests


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"urls": [f"{SITE}/tomato.html"], "sources": "index"}, "use sources 'live' or 'both'"),
        ({"sources": "live"}, "needs urls or search"),
        ({"urls": [f"{SITE}/tomato.html"], "sources": "live", "recheck": True}, "recheck"),
    ],
)
def test_inconsistent_live_options_are_refused(harness: Harness, body: dict[str, Any], detail: str) -> None:
    response = harness.ask(question="When are tomatoes planted?", **body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]
    assert harness.site.requests == []


def test_too_many_urls_are_refused(harness: Harness) -> None:
    response = harness.ask(question="q?", urls=[f"{SITE}/p{i}.html" for i in range(11)])
    assert response.status_code == 400
    assert harness.site.requests == []


def test_search_without_a_provider_is_refused(tmp_path: Path) -> None:
    one_page_index(tmp_path, EMBEDDER, "some text about kettles and tomatoes in a garden")
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs"), embedder=EMBEDDER,
                     generator=ScriptedGenerator(echo))  # fmt: skip
    with TestClient(app) as client:
        response = client.post("/v1/ask", json={"question": "q?", "search": True})
    assert response.status_code == 422
    assert "CITELINE_SEARCH_URL" in response.json()["detail"]


def test_chat_completion_answers_from_a_live_page(harness: Harness) -> None:
    harness.site.pages["/kettle.html"] = (200, KETTLE_V2, {"etag": '"v2"'})
    response = harness.client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "At what temperature does the kettle switch off?"}],
              "recheck": True},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert "ninety five" in message["content"]
    assert "\n\nNote: https://pages.example/kettle.html changed since it was indexed" in message["content"]
    assert message["annotations"][0]["url_citation"]["url"].startswith(f"{SITE}/kettle.html#:~:text=")


def test_streamed_answer_reports_the_live_pages_first(harness: Harness) -> None:
    body = {"question": "When are tomato seedlings planted?", "urls": [f"{SITE}/tomato.html"], "stream": True}
    with harness.client.stream("POST", "/v1/ask", json=body) as response:
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events[:2] == ["live", "retrieval"]
    assert events[-1] == "answer"


# -- pieces -------------------------------------------------------------------------------------


def test_search_query_keeps_content_words_and_code_names() -> None:
    assert search_query("How do I use os.path.join() on Windows?") == "use os.path.join Windows"
    assert search_query("What is it?") == "What is it"  # nothing left: the question as it is


def test_select_passages_takes_the_best_by_bm25_in_page_order() -> None:
    def page(*texts: str) -> LivePage:
        record = PageRecord(url="u", title="t", text="\n".join(texts))
        return LivePage(record, [PassageRecord(0, 1, t) for t in texts], list(texts), 0.0)

    kettle = page("apples are red", "kettle boils water", "bananas are yellow", "the kettle descaling",
                  "kettle descaling with vinegar", "pears are green")  # fmt: skip
    other = page("short page", "nothing in common", "at all here")
    assert select_passages("kettle descaling", [kettle, other], 12, 48) == [list(range(6)), [0, 1, 2]]
    # Within the per-page cap: the best by BM25, in page order.
    assert select_passages("kettle descaling", [kettle, other], 3, 48) == [[1, 3, 4], [0, 1, 2]]
    # Within the total: every page keeps two (the first when none matches), the rest go to the best.
    assert select_passages("kettle descaling", [kettle, other], 12, 5) == [[1, 3, 4], [0, 1]]


def test_page_cache_expires_and_evicts() -> None:
    now = [0.0]
    cache = LivePageCache(ttl_s=10, max_pages=2, clock=lambda: now[0])
    pages = [LivePage(PageRecord(url=f"u{i}", title="", text=""), [], [], 0.0, checked_at=0.0) for i in range(3)]
    for i, p in enumerate(pages):
        cache.put(f"u{i}", p)
    assert cache.get("u0") is None  # evicted: two pages at most
    assert cache.get("u2") is pages[2]
    now[0] = 11
    assert cache.get("u2") is None
    assert cache.get("u2", fresh=False) is pages[2]  # kept for a conditional GET
    cache.revalidated("u2")
    assert cache.get("u2") is pages[2]


def test_merge_keeps_each_sources_order_and_drops_superseded_pages() -> None:
    from citeline.indexes import SearchHit
    from citeline.service.answering.source_set import SourceSet

    def hit(url: str, score: float) -> SearchHit:
        return SearchHit(0, score, "t", 0, 1, "", url, "", 0)

    sources = SourceSet(stored=None, superseded=frozenset({"s/old"}), live_metadata={"l/a": {"live_origin": "url"}})
    stored = [hit("s/1", 0.9), hit("s/old", 0.85), hit("s/2", 0.5), hit("s/3", 0.7)]  # MMR order, not by score
    live = [hit("l/a", 0.8), hit("l/a", 0.6)]
    merged = sources.merge(stored, live, 4)
    assert [(h.url, h.score) for h in merged] == [("s/1", 0.9), ("l/a", 0.8), ("l/a", 0.6), ("s/2", 0.5)]
    assert merged[1].metadata == {"live_origin": "url"}


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_bomb_served_as_robots_txt_of_a_live_page_is_read_with_a_bound(harness: Harness, encoding: str) -> None:
    bomb_response(encoding, "text/plain")
    harness.site.raw["/robots.txt"] = lambda: bomb_response(encoding, "text/plain")
    with peak_memory() as peak:
        body = harness.ask(question="When are tomatoes planted?", urls=[f"{SITE}/tomato.html"], sources="live").json()
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    if encoding == "gzip":  # its first 500 KiB are parsed: zeros, no rules, the page may be fetched
        assert body["live"]["skipped"] == []
        assert "GET /tomato.html" in harness.site.requests
    else:
        [skipped] = body["live"]["skipped"]
        assert skipped["kind"] == "robots"
        assert "unsupported content-encoding 'br'" in skipped["reason"]
        assert "GET /tomato.html" not in harness.site.requests


@pytest.mark.parametrize(
    ("encoding", "kind", "reason"),
    [("gzip", "size", "decompresses to more than"), ("br", "type", "unsupported content-encoding 'br'")],
)
def test_bomb_served_as_a_live_page_is_read_with_a_bound(
    harness: Harness, encoding: str, kind: str, reason: str
) -> None:
    bomb_response(encoding, "text/html")
    harness.site.raw["/bomb.html"] = lambda: bomb_response(encoding, "text/html")
    with peak_memory() as peak:
        body = harness.ask(question="When are tomatoes planted?", urls=[f"{SITE}/bomb.html"], sources="live").json()
    assert peak.heap < LIMIT, peak
    assert peak.rss < LIMIT, peak
    [skipped] = body["live"]["skipped"]
    assert skipped["kind"] == kind
    assert reason in skipped["reason"]


def test_redirect_of_a_live_page_into_a_disallowed_path_is_not_followed(harness: Harness) -> None:
    harness.site.pages["/robots.txt"] = (200, "User-agent: *\nDisallow: /tomato", {})
    harness.site.raw["/go.html"] = lambda: httpx.Response(302, headers={"Location": f"{SITE}/tomato.html"})
    body = harness.ask(question="When are tomatoes planted?", urls=[f"{SITE}/go.html"], sources="live").json()
    [skipped] = body["live"]["skipped"]
    assert skipped["kind"] == "robots"
    assert f"redirected to {SITE}/tomato.html, disallowed by robots.txt" in skipped["reason"]
    assert "GET /go.html" in harness.site.requests
    assert "GET /tomato.html" not in harness.site.requests
