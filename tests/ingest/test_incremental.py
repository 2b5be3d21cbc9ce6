"""Re-ingesting: conditional GETs, gone pages, opt-outs, robots.txt, duplicates, resume after a crash."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from citeline.indexes import HashEmbedder, PassageIndex
from citeline.ingest import CrawlScope, IngestInputs, IngestOptions, IngestSettings, run_ingest
from citeline.ingest.journal import JOURNAL_FILE

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
]


def body(topic: str, n: int = 400) -> str:
    """A page of ``n`` words about ``topic``, distinct from other topics' pages."""
    words = [f"{topic}{WORDS[(i * 7 + len(topic)) % len(WORDS)]}{i % 13}" for i in range(n)]
    return f"<html><head><title>{topic}</title></head><body><h1>{topic}</h1><p>{' '.join(words)}.</p>"


@dataclass
class Site:
    """A mock site whose pages can change between runs; it honours If-None-Match like a real server."""

    pages: dict[str, str]
    robots: str | None = None
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    conditional: Counter[str] = field(default_factory=Counter)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests[path] += 1
        if path == "/robots.txt":
            return httpx.Response(200, text=self.robots) if self.robots else httpx.Response(404)
        if path not in self.pages:
            return httpx.Response(404, html="gone")
        html = self.pages[path]
        etag = f'"{abs(hash(html))}"'
        if request.headers.get("if-none-match") == etag:
            self.conditional[path] += 1
            return httpx.Response(304, headers={"etag": etag})
        headers = {"etag": etag, "last-modified": formatdate(0, usegmt=True), **self.headers.get(path, {})}
        return httpx.Response(200, html=html, headers=headers)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def site_with(*names: str, links: str = "") -> dict[str, str]:
    index = body("index") + "".join(f'<a href="{n}.html">{n}</a>' for n in names) + links + "</body></html>"
    return {"/docs/index.html": index, **{f"/docs/{n}.html": body(n) + "</body></html>" for n in names}}


async def run(tmp_path: Path, site: Site, **kwargs: object):  # type: ignore[no-untyped-def]
    settings = IngestSettings(data_dir=tmp_path, index="t", per_host_delay=0, embed_batch_passages=2)
    return await run_ingest(
        ["http://site.test/docs/index.html"],
        settings=settings,
        embedder=HashEmbedder(32),
        transport=site.transport(),
        **kwargs,  # type: ignore[arg-type]
    )


def open_index(tmp_path: Path) -> PassageIndex:
    return PassageIndex.open(tmp_path, "t")


async def test_unchanged_pages_cost_a_304_and_no_embedding(tmp_path: Path) -> None:
    site = Site(site_with("a", "b"))
    first = await run(tmp_path, site)
    assert (first.pages_new, first.pages_not_modified) == (3, 0)
    second = await run(tmp_path, site)
    assert second.pages_not_modified == 3
    assert second.pages_unchanged == 3
    assert second.passages_added == 0
    assert sum(site.conditional.values()) == 3
    index = open_index(tmp_path)
    page = index.page("http://site.test/docs/a.html")
    assert page is not None
    assert page.etag
    assert page.status == 304
    assert index.check_integrity() == []


async def test_changed_pages_replace_their_passages_and_gone_pages_are_removed(tmp_path: Path) -> None:
    site = Site(site_with("a", "b"))
    await run(tmp_path, site)
    site.pages["/docs/a.html"] = body("changed") + "</body></html>"
    del site.pages["/docs/b.html"]
    summary = await run(tmp_path, site)
    assert summary.pages_updated == 1
    assert summary.pages_gone == 1
    assert summary.pages_removed == 1
    index = open_index(tmp_path)
    assert "http://site.test/docs/b.html" not in index.page_urls()
    page = index.page("http://site.test/docs/a.html")
    assert page is not None
    assert "changed" in page.text
    assert index.check_integrity() == []


async def test_gone_pages_can_be_kept_and_marked(tmp_path: Path) -> None:
    site = Site(site_with("a", "b"))
    await run(tmp_path, site)
    del site.pages["/docs/b.html"]
    await run(tmp_path, site, options=IngestOptions(keep_gone=True))
    page = open_index(tmp_path).page("http://site.test/docs/b.html")
    assert page is not None
    assert page.gone


@pytest.mark.parametrize(
    ("headers", "meta", "reason"),
    [
        ({"x-robots-tag": "noai"}, "", "noai"),
        ({}, '<meta name="robots" content="noindex">', "noindex"),
        ({}, '<meta name="tdm-reservation" content="1">', "tdm-reservation"),
        ({"x-robots-tag": "otherbot: noindex"}, "", None),
    ],
)
async def test_owner_opt_outs_skip_and_remove_pages(
    tmp_path: Path, headers: dict[str, str], meta: str, reason: str | None
) -> None:
    site = Site(site_with("a", "b"))
    await run(tmp_path, site)
    site.pages["/docs/a.html"] = site.pages["/docs/a.html"].replace("<head>", f"<head>{meta}") + " "
    site.headers["/docs/a.html"] = headers
    summary = await run(tmp_path, site)
    stored = "http://site.test/docs/a.html" in open_index(tmp_path).page_urls()
    if reason is None:
        assert stored
        assert summary.skipped["opt_out"] == 0
    else:
        assert not stored
        assert summary.skipped["opt_out"] == 1
        assert summary.pages_removed == 1
        assert any(f.kind == "opt_out" and reason in f.reason for f in summary.failures)


async def test_robots_txt_disallows_part_of_the_site(tmp_path: Path) -> None:
    site = Site(site_with("a", "private"), robots="User-agent: *\nDisallow: /docs/private\n")
    summary = await run(tmp_path, site)
    assert summary.skipped["robots"] == 1
    assert site.requests["/docs/private.html"] == 0
    assert site.requests["/robots.txt"] == 1
    assert "http://site.test/docs/private.html" not in open_index(tmp_path).page_urls()


async def test_scope_deny_pattern(tmp_path: Path) -> None:
    site = Site(site_with("a", "b"))
    summary = await run(tmp_path, site, inputs=IngestInputs(seeds=("http://site.test/docs/index.html",),
                                                            scope=CrawlScope(deny=(r"/b\.html$",))))  # fmt: skip
    assert site.requests["/docs/b.html"] == 0
    assert summary.index_pages == 2


async def test_exact_and_near_duplicates_become_aliases(tmp_path: Path) -> None:
    pages = site_with("a", "copy", "near")
    pages["/docs/copy.html"] = pages["/docs/a.html"]
    pages["/docs/near.html"] = pages["/docs/a.html"].replace("</p>", " One extra word.</p>")
    site = Site(pages)
    summary = await run(tmp_path, site)
    assert summary.duplicates == 2
    index = open_index(tmp_path)
    assert sorted(index.page_urls()) == ["http://site.test/docs/a.html", "http://site.test/docs/index.html"]
    assert index.alias_of("http://site.test/docs/copy.html") == ("http://site.test/docs/a.html", "exact")
    assert index.alias_of("http://site.test/docs/near.html") == ("http://site.test/docs/a.html", "near")


async def test_killed_job_resumes_without_refetching_finished_pages(tmp_path: Path) -> None:
    names = [f"p{i}" for i in range(12)]
    site = Site(site_with(*names))
    seen: list[int] = []

    def stop_after_eight(state: object) -> None:
        seen.append(1)
        if len(seen) == 8:
            raise asyncio.CancelledError  # the process dies here: nothing after this runs

    with pytest.raises(asyncio.CancelledError):
        await run(tmp_path, site, progress=stop_after_eight)
    assert (tmp_path / "indexes" / "t" / JOURNAL_FILE).exists()
    stored_before = set(open_index(tmp_path).page_urls())
    fetched_before = Counter(site.requests)

    summary = await run(tmp_path, site)
    assert summary.resumed
    assert summary.resumed_done >= 1
    refetched = [p for p in fetched_before if p != "/robots.txt" and site.requests[p] > fetched_before[p]]
    finished = {u.removeprefix("http://site.test") for u in stored_before}
    assert not finished & set(refetched), "pages finished before the kill are not fetched again"
    index = open_index(tmp_path)
    assert index.page_count() == 13
    assert index.check_integrity() == []

    again = await run(tmp_path, site)
    assert not again.resumed, "a job that ran to its end leaves no checkpoint"
