"""Ingest jobs over HTTP: start, progress, summary, cancel, and recovery after a service restart."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from indexes import HashEmbedder
from service.app import create_app
from service.generation import ScriptedGenerator
from service.settings import ServiceSettings

# Stands in for `citeline ingest`: writes progress, sleeps as long as its seed says, writes a summary.
FAKE_INGEST = """
import json, sys, time
args = sys.argv[1:]
out = lambda flag: args[args.index(flag) + 1]
seconds = float(args[1].rsplit("-", 1)[1])
for step in range(int(seconds * 10)):
    json.dump({"fetched": step}, open(out("--progress-json"), "w"))
    time.sleep(0.1)
if "fail" in args[1]:
    print("error: no page could be fetched", file=sys.stderr)
    sys.exit(1)
json.dump({"pages_new": 3, "args": args}, open(out("--summary-json"), "w"))
"""
COMMAND = [sys.executable, "-c", FAKE_INGEST]
INGEST_KEY = {"Authorization": "Bearer ingest-key"}


def make_app(tmp_path: Path, **settings: Any) -> TestClient:  # type: ignore[type-arg]
    config = ServiceSettings(data_dir=tmp_path, api_keys={"ingest-key": "ingest", "read-key": "read"}, **settings)
    app = create_app(config, embedder=HashEmbedder(8), generator=ScriptedGenerator("x"), job_command=COMMAND)
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with make_app(tmp_path) as test_client:
        yield test_client


def wait_for(client: TestClient, job_id: str, state: str, timeout: float = 20) -> dict[str, Any]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/ingest/{job_id}", headers=INGEST_KEY).json()
        if job["state"] == state:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {state}: {job}")


def test_job_runs_reports_progress_and_summary(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"seeds": ["http://site.test/sleep-1"], "index": "docs", "max_pages": 5, "deny": ["/private/"]}
    started = client.post("/v1/ingest", json=body, headers=INGEST_KEY)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.json()["state"] == "running"
    done = wait_for(client, job_id, "succeeded")
    assert done["summary"]["pages_new"] == 3
    args = done["summary"]["args"]
    assert args[:2] == ["ingest", "http://site.test/sleep-1"]
    assert args[args.index("--index") + 1] == "docs"
    assert args[args.index("--deny") + 1] == "/private/"
    assert done["progress"]["fetched"] >= 1
    assert [j["id"] for j in client.get("/v1/ingest", headers=INGEST_KEY).json()] == [job_id]


def test_failed_job_says_why(client: TestClient) -> None:  # type: ignore[type-arg]
    job_id = client.post("/v1/ingest", json={"seeds": ["http://site.test/fail-0.2"]}, headers=INGEST_KEY).json()["id"]
    failed = wait_for(client, job_id, "failed")
    assert failed["exit_code"] == 1
    assert "no page could be fetched" in failed["error"]


def test_cancel_stops_the_job(client: TestClient) -> None:  # type: ignore[type-arg]
    job_id = client.post("/v1/ingest", json={"seeds": ["http://site.test/sleep-30"]}, headers=INGEST_KEY).json()["id"]
    cancelled = client.delete(f"/v1/ingest/{job_id}", headers=INGEST_KEY)
    assert cancelled.status_code == 200
    assert wait_for(client, job_id, "cancelled", timeout=5)["summary"] is None
    assert client.delete("/v1/ingest/nope", headers=INGEST_KEY).status_code == 404


def test_ingest_needs_the_ingest_scope_and_valid_options(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"seeds": ["http://site.test/sleep-0.1"]}
    assert client.post("/v1/ingest", json=body).status_code == 401
    assert client.post("/v1/ingest", json=body, headers={"X-API-Key": "read-key"}).status_code == 403
    assert client.post("/v1/ingest", json={}, headers=INGEST_KEY).status_code == 422
    assert client.post("/v1/ingest", json={"seeds": [], "bogus": 1}, headers=INGEST_KEY).status_code == 400


def test_running_job_survives_a_service_restart(tmp_path: Path) -> None:
    with make_app(tmp_path) as first:
        job_id = first.post("/v1/ingest", json={"seeds": ["http://site.test/sleep-1.5"]}, headers=INGEST_KEY).json()[
            "id"
        ]
        time.sleep(0.3)
    # The first service is gone (its job killed with it or not): the next one takes the job up again.
    with make_app(tmp_path) as second:
        job = second.get(f"/v1/ingest/{job_id}", headers=INGEST_KEY).json()
        assert job["restarts"] == 1
        assert wait_for(second, job_id, "succeeded")["summary"]["pages_new"] == 3


def test_metrics_count_ingest_jobs_and_index_size(client: TestClient) -> None:  # type: ignore[type-arg]
    job_id = client.post("/v1/ingest", json={"seeds": ["http://site.test/sleep-0.2"]}, headers=INGEST_KEY).json()["id"]
    wait_for(client, job_id, "succeeded")
    text = client.get("/metrics").text
    assert 'citeline_ingest_jobs_total{state="succeeded"}' in text
    assert 'citeline_ingest_pages_total{result="new"}' in text


def test_options_with_control_characters_are_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    refused = client.post("/v1/ingest", json={"seeds": ["http://a.test/\u0000x"]}, headers=INGEST_KEY)
    assert refused.status_code == 422
    assert client.get("/v1/ingest", headers=INGEST_KEY).json() == [], "a refused job leaves no record"
