"""Two SSRF allow-lists: ``allow_hosts`` opens private networks to ingest only, ``live_allow_hosts``
to pages fetched at question time. Opening one must not open the other (the job direction is in
``test_jobs.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import TestClient

from citeline.indexes import HashEmbedder
from citeline.service.api import create_app
from citeline.service.generation import ScriptedGenerator
from citeline.service.live import SearchResult, StaticSearch
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
PRIVATE = "http://10.9.8.7"
PAGE = (
    "<html><head><title>Intranet</title></head><body><article><h1>Intranet</h1>"
    "<p>The intranet wiki says the staging database password rotates every ninety days.</p>"
    "</article></body></html>"
)


@contextmanager
def service(tmp_path: Path, requests: list[str], **settings: Any) -> Iterator[TestClient]:  # type: ignore[type-arg]
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.host}{request.url.path}")
        if request.url.path == "/page.html":
            return httpx.Response(200, text=PAGE, headers={"content-type": "text/html; charset=utf-8"})
        return httpx.Response(404, text="not found")

    one_page_index(tmp_path, EMBEDDER, "json.load reads JSON from a file.")
    config = ServiceSettings(data_dir=tmp_path, index="docs", live_budget_s=2.0, live_per_host_delay=0, **settings)
    app = create_app(
        config,
        embedder=EMBEDDER,
        generator=ScriptedGenerator("x"),
        live_transport=httpx.MockTransport(handle),
        search=StaticSearch([SearchResult(f"{PRIVATE}/page.html", "Intranet")]),
    )
    with TestClient(app) as client:
        yield client


def test_the_ingest_allow_list_does_not_open_live_pages(tmp_path: Path) -> None:
    requests: list[str] = []
    with service(tmp_path, requests, allow_hosts=["10.0.0.0/8"]) as client:
        named = client.post("/v1/ask", json={"question": "When does the password rotate?",
                                             "urls": [f"{PRIVATE}/page.html"]})  # fmt: skip
        assert named.status_code == 422, named.text
        assert "private" in named.json()["detail"]
        found = client.post("/v1/ask", json={"question": "When does the password rotate?", "search": True})
        assert found.status_code == 200, found.text
        skipped = found.json()["live"]["skipped"]
        assert [(s["url"], s["kind"]) for s in skipped] == [(f"{PRIVATE}/page.html", "blocked")]
    assert requests == [], "no request reached the private network"


def test_the_live_allow_list_opens_live_pages(tmp_path: Path) -> None:
    requests: list[str] = []
    with service(tmp_path, requests, live_allow_hosts=["10.0.0.0/8"]) as client:
        named = client.post("/v1/ask", json={"question": "When does the password rotate?",
                                             "urls": [f"{PRIVATE}/page.html"], "sources": "live"})  # fmt: skip
        assert named.status_code == 200, named.text
        assert [p["url"] for p in named.json()["live"]["pages"]] == [f"{PRIVATE}/page.html"]
    assert "GET 10.9.8.7/page.html" in requests
