"""Live pages end to end: the real embedder and model, a real ``citeline serve``, real pages on loopback.

One loopback site serves real Python and SQLite documentation pages (copied into a folder the
test can edit), a page that answers too slowly for the budget, and a SearxNG-format ``/search``
JSON API. A second loopback address, outside the SSRF allow-list, counts requests that must never
arrive. The index holds two of the pages; the others are only ever fetched at question time.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import (
    PYTHON_DOCS,
    SQLITE_DOCS,
    LiveService,
    assert_quote_on_page,
    citeline_env,
    corpus,
    live_service,
    run_citeline,
    web_ui,
)

pytestmark = pytest.mark.e2e

SLOW_SECONDS = 30.0
# The loopback site is opened to question-time fetches on purpose; ingest's allow-list (which
# citeline_env sets) no longer opens them.
LIVE_ALLOW_HOSTS = '["127.0.0.1"]'


@dataclass
class Site:
    base_url: str
    directory: Path
    requests: list[str] = field(default_factory=list)
    """``METHOD PATH STATUS`` of every request answered, in order."""

    def page_requests(self, path: str) -> list[str]:
        return [r for r in self.requests if r.split()[1] == path]


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files (with Last-Modified / If-Modified-Since), plus ``/slow.html`` and ``/search``."""

    site: Site
    stop: threading.Event

    def log_message(self, format: str, *args: object) -> None:
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.site.requests.append(f"{self.command} {self.path} {code}")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/slow.html":
            self.stop.wait(SLOW_SECONDS)  # far past any budget; ends when the server stops
        if parts.path == "/search":
            query = parse_qs(parts.query)
            assert query.get("format") == ["json"]
            results = [
                {"url": self.site.base_url + "tempfile.html", "title": "tempfile", "content": "", "engine": "e2e"}
            ]
            body = json.dumps({"query": query["q"][0], "number_of_results": 1, "results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@contextlib.contextmanager
def serve_site(directory: Path, host: str = "127.0.0.1") -> Iterator[Site]:
    stop = threading.Event()
    site = Site("", directory)
    handler = type("Handler", (_SiteHandler,), {"site": site, "stop": stop})
    server = http.server.ThreadingHTTPServer((host, 0), functools.partial(handler, directory=str(directory)))
    server.daemon_threads = True
    site.base_url = f"http://{host}:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("live-site")
    library = corpus(PYTHON_DOCS) / "library"
    for name in ("shutil.html", "zipfile.html", "tempfile.html"):
        shutil.copy(library / name, root / name)
    shutil.copy(corpus(SQLITE_DOCS) / "limits.html", root / "limits.html")
    (root / "slow.html").write_text((root / "zipfile.html").read_text())
    with serve_site(root) as served:
        yield served


@pytest.fixture(scope="module")
def forbidden() -> Iterator[Site]:
    """A server on 127.0.0.2: a loopback address the SSRF allow-list (127.0.0.1 only) refuses."""
    with serve_site(Path(__file__).parent, host="127.0.0.2") as served:
        yield served


@pytest.fixture(scope="module")
def service(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    data_dir = tmp_path_factory.mktemp("live-data")
    seeds = [site.base_url + "shutil.html", site.base_url + "limits.html"]
    completed = run_citeline(
        ["ingest", *seeds, "--max-depth", "0", "--index", "stored", "--summary-json", str(data_dir / "s.json")],
        citeline_env(data_dir),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((data_dir / "s.json").read_text())["pages_indexed"] == 2
    with live_service(data_dir, index="stored", CITELINE_SEARCH_URL=site.base_url.rstrip("/"),
                      CITELINE_LIVE_ALLOW_HOSTS=LIVE_ALLOW_HOSTS) as live:  # fmt: skip
        yield live


def ask(service: LiveService, question: str, **extra: Any) -> dict[str, Any]:
    return service.ask(question, **extra)


def test_live_url_answers_and_cites_while_a_slow_page_is_skipped(service: LiveService, site: Site) -> None:
    started = time.monotonic()
    body = ask(service, "How do I get the list of file names in a ZIP archive?", sources="live", budget_s=4,
               urls=[site.base_url + "zipfile.html", site.base_url + "slow.html"])  # fmt: skip
    elapsed = time.monotonic() - started
    live = body["live"]
    assert [(s["url"], s["kind"]) for s in live["skipped"]] == [(site.base_url + "slow.html", "budget")]
    assert live["fetch_ms"] < 4000 + 500  # the slow page was not waited for
    assert elapsed < SLOW_SECONDS
    assert [p["url"] for p in live["pages"]] == [site.base_url + "zipfile.html"]
    assert body["abstained"] is False, body
    assert "namelist" in body["answer"], body["answer"]
    page = (site.directory / "zipfile.html").read_text()
    for citation in body["citations"]:
        assert citation["url"] == site.base_url + "zipfile.html"
        assert citation["live"] == "url"
        assert citation["fetched_at"].endswith("Z")
        assert citation["content_hash"] == live["pages"][0]["content_hash"]
        assert_quote_on_page(citation["quote"], page)
    assert any("slow.html" in notice for notice in body["notices"])


def test_ssrf_refused_url_is_a_clear_error_and_nothing_is_fetched(
    service: LiveService, site: Site, forbidden: Site
) -> None:
    before = len(site.requests)
    response = httpx.post(
        f"{service.base_url}/v1/ask",
        json={"question": "What is on the page?", "urls": [site.base_url + "zipfile.html", forbidden.base_url]},
        timeout=60,
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["title"] == "URL refused"
    assert "127.0.0.2" in problem["detail"]
    assert "nothing was fetched" in problem["detail"]
    assert forbidden.requests == []
    assert site.requests[before:] == []


def test_search_results_are_fetched_and_a_follow_up_uses_the_cache(service: LiveService, site: Site) -> None:
    body = ask(service, "What does tempfile.gettempdir() return?", search=True)
    assert body["live"]["search"]["provider"] == "searxng"
    assert body["live"]["search"]["results"][0]["url"] == site.base_url + "tempfile.html"
    assert body["live"]["sources"] == "both"
    assert body["abstained"] is False, body
    assert "directory" in body["answer"].lower(), body["answer"]
    assert any(c["live"] == "search" and c["url"] == site.base_url + "tempfile.html" for c in body["citations"])
    fetched = len(site.page_requests("/tempfile.html"))
    assert fetched == 1
    follow_up = ask(service, "Which environment variables set the default temporary directory?", search=True)
    assert follow_up["live"]["pages"][0]["cached"] is True
    assert len(site.page_requests("/tempfile.html")) == fetched


def test_recheck_of_an_unchanged_page_is_a_conditional_get(service: LiveService, site: Site) -> None:
    # top_k=1: only the page of the best passage is rechecked (limits.html is left for the next test).
    body = ask(service, "Which function recursively copies an entire directory tree?", recheck=True, top_k=1)
    assert [(r["url"], r["outcome"], r["status"]) for r in body["live"]["rechecked"]] == [
        (site.base_url + "shutil.html", "unchanged", 304)
    ]
    assert site.page_requests("/shutil.html")[-1].endswith(" 304")  # If-Modified-Since from the index
    # An unchanged page adds no notice (an answer quoted from the sources carries the extract's own).
    assert not [n for n in body["notices"] if "extract" not in n and "quoted verbatim" not in n], body["notices"]
    assert body["abstained"] is False, body
    assert "copytree" in body["answer"], body["answer"]
    assert all(c["live"] is None and not c["changed_since_index"] for c in body["citations"])


def test_recheck_answers_from_the_current_text_of_a_changed_page(service: LiveService, site: Site) -> None:
    question = "What is the default setting for SQLITE_MAX_COLUMN?"
    limits = site.directory / "limits.html"
    limits.write_text(limits.read_text().replace("SQLITE_MAX_COLUMN is 2000", "SQLITE_MAX_COLUMN is 4096"))
    later = time.time() + 5  # Last-Modified has one-second resolution
    os.utime(limits, (later, later))
    changed = ask(service, question, recheck=True)
    report = {r["url"]: r for r in changed["live"]["rechecked"]}[site.base_url + "limits.html"]
    assert report["outcome"] == "changed"
    assert report["current_hash"] != report["indexed_hash"]
    assert any("limits.html changed since it was indexed" in n for n in changed["notices"])
    assert "4096" in changed["answer"], changed["answer"]
    assert "2000" not in changed["answer"]
    cited = [c for c in changed["citations"] if c["url"] == site.base_url + "limits.html"]
    assert cited
    assert all(c["changed_since_index"] and c["live"] == "recheck" for c in cited)
    assert all(c["content_hash"] == report["current_hash"] for c in cited)
    assert not any("SQLITE_MAX_COLUMN is 2000" in r["text"] for r in changed["retrieved"])
    for citation in cited:
        assert_quote_on_page(citation["quote"], limits.read_text())


def test_chat_completion_takes_live_urls(service: LiveService, site: Site) -> None:
    response = httpx.post(
        f"{service.base_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "How do I get the list of file names in a ZIP archive?"}],
              "urls": [site.base_url + "zipfile.html"], "sources": "live"},
        timeout=180,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert "namelist" in message["content"]
    assert message["annotations"]
    assert all(a["url_citation"]["url"].startswith(site.base_url + "zipfile.html#:~:text=")
               for a in message["annotations"])  # fmt: skip


def test_cli_ask_answers_from_a_live_url(service: LiveService, site: Site) -> None:
    completed = run_citeline(
        ["ask", "How do I get the list of file names in a ZIP archive?", "--url", site.base_url + "zipfile.html",
         "--sources", "live", "--json"],
        citeline_env(service.data_dir, CITELINE_INDEX="stored", CITELINE_LIVE_ALLOW_HOSTS=LIVE_ALLOW_HOSTS),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout)
    assert answer["abstained"] is False, answer
    assert answer["live"]["pages"][0]["url"] == site.base_url + "zipfile.html"
    assert all(c["live"] == "url" and c["url"] == site.base_url + "zipfile.html" for c in answer["citations"])


def test_cli_ask_refuses_an_ssrf_url_before_fetching(service: LiveService, forbidden: Site) -> None:
    completed = run_citeline(["ask", "What is there?", "--url", forbidden.base_url + "secret.html"],
                             citeline_env(service.data_dir, CITELINE_INDEX="stored",
                                          CITELINE_LIVE_ALLOW_HOSTS=LIVE_ALLOW_HOSTS))  # fmt: skip
    assert completed.returncode == 2
    assert "127.0.0.2" in completed.stderr
    assert "nothing was fetched" in completed.stderr
    assert forbidden.requests == []


def test_the_ingest_allow_list_does_not_open_live_urls(service: LiveService, site: Site) -> None:
    """citeline_env opens 127.0.0.1 to ingest (the index was crawled from it); without the live
    allow-list a question-time fetch of the same site is refused before any request."""
    completed = run_citeline(["ask", "What is there?", "--url", site.base_url + "sqlite-limits.html"],
                             citeline_env(service.data_dir, CITELINE_INDEX="stored"))  # fmt: skip
    assert completed.returncode == 2, completed.stderr[-3000:]
    message = " ".join(completed.stderr.split())  # rich wraps long lines
    assert "nothing was fetched: blocked address 127.0.0.1 (loopback)" in message
    assert site.page_requests("/sqlite-limits.html") == []


def test_web_ui_checks_against_a_live_page(service: LiveService, site: Site) -> None:
    """In headless Chromium: name a live page and a slow one, ask, see the skip notice and a live citation."""
    with web_ui(service.base_url) as page:
        page.fill("#question", "How do I get the list of file names in a ZIP archive?")
        page.click("#live-options summary")
        page.fill("#live-urls", f"{site.base_url}zipfile.html\n{site.base_url}slow.html")
        page.select_option("#sources", "live")
        page.click("#ask-button")
        page.wait_for_selector(".answer-text", timeout=240_000)
        assert "namelist" in page.inner_text(".answer-text")
        assert "slow.html" in page.inner_text("ul.notices")
        page.click(".cite")
        assert "fetched live at" in page.inner_text(".quote .live")
