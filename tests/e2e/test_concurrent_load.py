"""Ordinary load never answers 5xx: an ingest job commits pages into the index that 8 clients
search and ask at the same time, with the real embedder, generator and FAISS, ``citeline serve``
as its own process and the Python docs on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveService, StaticServer, assert_quote_on_page, citeline_env, live_service, run_citeline

pytestmark = pytest.mark.e2e

INITIAL = ["library/json.html", "library/csv.html", "tutorial/inputoutput.html"]
JOB_SEED = "library/index.html"
JOB_PAGES = 10
"""Pages the job stores: fewer than the 50 between flushes, so readers follow unflushed commits."""
THINK_S = 0.3
"""Each client's pause between searches: 8 clients searching flat out would starve the job of CPU."""
SEARCHES = [
    "How do I read a JSON file?",
    "write rows to a CSV file",
    "open a file for reading and writing",
    "built-in function that returns the absolute value",
    "regular expression syntax",
    "format a string with placeholders",
]
QUESTIONS = ["How do I read a JSON file in Python?", "Which function writes rows to a CSV file?"]
CLIENTS = 8
HEALTH_BOUND_S = 5.0
"""A liveness bound, not a latency target: /healthz must keep answering while all this runs."""


@dataclass
class Record:
    statuses: list[tuple[str, int]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses.append((what, response.status_code))
            if response.status_code >= 500:
                self.errors.append(f"{what}: {response.status_code} {response.text[:300]}")


@pytest.fixture(scope="module")
def service(python_docs: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    data_dir = tmp_path_factory.mktemp("load-data")
    seeds = [python_docs.base_url + page for page in INITIAL]
    done = run_citeline(["ingest", *seeds, "--max-depth", "0", "--index", "py"], citeline_env(data_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    # One client address stands for all 8 clients here: the per-client rate limit would answer 429.
    with live_service(data_dir, index="py", CITELINE_RATE_LIMIT_PER_MINUTE="0") as live:
        yield live


def client(base: str, number: int, record: Record, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=300) as http:
        if number < len(QUESTIONS):
            response = http.post("/v1/ask", json={"question": QUESTIONS[number]})
            record.add("ask", response)
            if response.status_code == 200:
                with record.lock:
                    record.answers.append(response.json())
        i = number
        while not stop.is_set():
            response = http.get("/v1/search", params={"q": SEARCHES[i % len(SEARCHES)], "k": 5})
            record.add("search", response)
            i += 1
            stop.wait(THINK_S)


def probe_health(base: str, record: Record, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            response = http.get("/healthz")
            elapsed = time.perf_counter() - started
            with record.lock:
                record.health.append(elapsed)
            record.add("healthz", response)
            time.sleep(0.2)


def test_search_and_ask_during_an_ingest_job(service: LiveService, python_docs: StaticServer) -> None:
    base = service.base_url
    started = httpx.post(
        f"{base}/v1/ingest",
        json={"seeds": [python_docs.base_url + JOB_SEED], "index": "py", "max_depth": 1, "max_pages": JOB_PAGES},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    record, stop = Record(), threading.Event()
    threads = [threading.Thread(target=client, args=(base, n, record, stop)) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=probe_health, args=(base, record, stop)))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 150
    try:
        while True:
            polled = httpx.get(f"{base}/v1/ingest/{job_id}", timeout=30)
            assert polled.status_code == 200, polled.text
            if (job := polled.json())["state"] != "running":
                break
            assert time.monotonic() < deadline, "the ingest job did not finish in time"
            time.sleep(1)
        while len(record.answers) < len(QUESTIONS) and not record.errors:
            assert time.monotonic() < deadline, "the answers did not come in time"
            time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    assert job["state"] == "succeeded", job
    assert job["summary"]["pages_new"] >= JOB_PAGES // 2, job["summary"]
    assert record.errors == []
    searches = [status for what, status in record.statuses if what == "search"]
    assert len(searches) >= 50, "the searches ran all along"
    assert set(searches) == {200}
    assert record.health, "healthz was probed"
    assert max(record.health) < HEALTH_BOUND_S, max(record.health)
    for answer in record.answers:
        assert answer["abstained"] is False, answer
        retrieved = {p["passage_id"]: p for p in answer["retrieved"]}
        for citation in answer["citations"]:
            passage = retrieved[citation["passage_id"]]
            assert citation["url"] == passage["url"]
            assert citation["quote"] in passage["text"]
            page = httpx.get(citation["url"], timeout=30)
            assert page.status_code == 200
            assert_quote_on_page(citation["quote"], page.text)
    # The service follows the job's commits: a page only the job stored is found.
    found = httpx.get(f"{base}/v1/search", params={"q": "Built-in Functions abs all any ascii", "k": 5}, timeout=60)
    assert found.status_code == 200
    assert any(hit["url"].endswith("library/functions.html") for hit in found.json()["hits"]), found.json()
    log = next(Path(service.data_dir).glob("serve-*.log")).read_text()
    assert "Traceback" not in log, log[-3000:]
