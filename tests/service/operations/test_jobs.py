"""Ingest jobs over HTTP: start, progress, summary, cancel, and recovery after a service restart."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from structlog.testing import capture_logs

from citeline.indexes import HashEmbedder
from citeline.service.api import create_app
from citeline.service.generation import ScriptedGenerator
from citeline.service.operations import IngestJobRequest, JobSpec
from citeline.service.settings import ServiceSettings
from tests.conftest import citeline_env, run_citeline, serve_directory

# Stands in for `citeline ingest --job-spec`: reads the spec, writes progress, sleeps as long as its
# first seed says, writes a summary (with the arguments and spec it was given).
FAKE_INGEST = """
import json, sys, time
args = sys.argv[1:]
out = lambda flag: args[args.index(flag) + 1]
spec = json.load(open(out("--job-spec")))
seed = spec["request"]["seeds"][0]
seconds = float(seed.rsplit("-", 1)[1])
for step in range(int(seconds * 10)):
    json.dump({"fetched": step}, open(out("--progress-json"), "w"))
    time.sleep(0.1)
if "fail" in seed:
    print("error: no page could be fetched", file=sys.stderr)
    sys.exit(1)
json.dump({"pages_new": 3, "args": args, "spec": spec}, open(out("--summary-json"), "w"))
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


def test_job_runs_reports_progress_and_summary(tmp_path: Path) -> None:
    body = {"seeds": ["http://site.test/sleep-1"], "index": "docs", "max_pages": 5, "deny": ["/private/"]}
    with make_app(
        tmp_path, allow_hosts=["10.1.0.0/16"], ingest_url_maps=["http://site.test/=https://site.example/"]
    ) as client:
        started = client.post("/v1/ingest", json=body, headers=INGEST_KEY)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert started.json()["state"] == "running"
        done = wait_for(client, job_id, "succeeded")
        assert [j["id"] for j in client.get("/v1/ingest", headers=INGEST_KEY).json()] == [job_id]
    assert done["summary"]["pages_new"] == 3
    assert done["progress"]["fetched"] >= 1
    # The child's arguments are the server's own words and paths: the request travels in the spec.
    jobs = tmp_path / "jobs"
    assert done["summary"]["args"] == [
        "ingest",
        "--job-spec", str(jobs / f"{job_id}.spec.json"),
        "--summary-json", str(jobs / f"{job_id}.summary.json"),
        "--progress-json", str(jobs / f"{job_id}.progress.json"),
    ]  # fmt: skip
    spec = done["summary"]["spec"]
    assert spec["request"]["seeds"] == ["http://site.test/sleep-1"]
    assert (spec["request"]["index"], spec["request"]["max_pages"], spec["request"]["deny"]) == (
        "docs",
        5,
        ["/private/"],
    )
    # What the caller cannot choose comes from the server's settings.
    assert spec["data_dir"] == str(tmp_path)
    assert spec["allow_hosts"] == ["10.1.0.0/16"]
    assert spec["url_maps"] == ["http://site.test/=https://site.example/"]
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


# --------------------------------------------------------------------------- hostile job bodies

LOOPBACK = "{loopback}"  # replaced by the URL of a loopback server that counts what reaches it
SITE = "http://docs.example/"

HOSTILE_JOBS: list[tuple[str, dict[str, Any], int, str]] = [
    # Option-shaped seeds: each would have been an option of the child before.
    ("dir option", {"seeds": ["--dir=/"]}, 422, "seeds[0]"),
    ("record-warc option", {"seeds": ["--record-warc=indexes/docs/vectors.faiss"]}, 422, "seeds[0]"),
    ("allow-host option", {"seeds": ["--allow-host=10.0.0.0/8", SITE]}, 422, "seeds[0]"),
    ("ray options", {"seeds": [SITE, "--engine=ray", "--ray-address=203.0.113.9:6379"]}, 422, "seeds[1]"),
    ("short option", {"seeds": ["-h"]}, 422, "seeds[0]"),
    ("option in a sitemap", {"sitemaps": ["--warc=/etc/passwd"]}, 422, "sitemaps[0]"),
    ("option in a feed", {"feeds": ["--map-url=x=y"]}, 422, "feeds[0]"),
    # Schemes the crawler never fetches.
    ("file", {"seeds": ["file:///etc/passwd"]}, 422, "seeds[0]"),
    ("gopher", {"seeds": ["gopher://127.0.0.1:25/_HELO"]}, 422, "seeds[0]"),
    ("data", {"seeds": ["data:text/html,<b>x</b>"]}, 422, "seeds[0]"),
    ("javascript", {"seeds": ["javascript:alert(1)"]}, 422, "seeds[0]"),
    ("ftp feed", {"feeds": ["ftp://docs.example/feed.xml"]}, 422, "feeds[0]"),
    ("scheme-relative", {"seeds": ["//127.0.0.1/"]}, 422, "seeds[0]"),
    # Private and special addresses, in the spellings the SSRF suite knows.
    ("loopback server", {"seeds": [LOOPBACK]}, 422, "seeds[0]"),
    ("loopback sitemap", {"seeds": [SITE], "sitemaps": [LOOPBACK + "sitemap.xml"]}, 422, "sitemaps[0]"),
    ("loopback feed", {"feeds": [LOOPBACK + "feed.xml"]}, 422, "feeds[0]"),
    ("short loopback", {"seeds": ["http://127.1/"]}, 422, "seeds[0]"),
    ("decimal loopback", {"seeds": ["http://2130706433/"]}, 422, "seeds[0]"),
    ("hex loopback", {"seeds": ["http://0x7f.0.0.1/"]}, 422, "seeds[0]"),
    ("octal loopback", {"seeds": ["http://0177.0.0.1/"]}, 422, "seeds[0]"),
    ("trailing-dot loopback", {"seeds": ["http://127.0.0.1./"]}, 422, "seeds[0]"),
    ("IPv6 loopback", {"seeds": ["http://[::1]:8000/"]}, 422, "seeds[0]"),
    ("IPv4-mapped", {"seeds": ["http://[::ffff:127.0.0.1]/"]}, 422, "seeds[0]"),
    ("NAT64", {"seeds": ["http://[64:ff9b::7f00:1]/"]}, 422, "seeds[0]"),
    ("6to4", {"seeds": ["http://[2002:a00:1::]/"]}, 422, "seeds[0]"),
    ("unique local", {"seeds": [SITE], "sitemaps": ["http://[fd00::1]/s.xml"]}, 422, "sitemaps[0]"),
    ("metadata", {"seeds": ["http://169.254.169.254/latest/meta-data/"]}, 422, "seeds[0]"),
    ("private 10/8", {"seeds": ["https://10.0.0.1/"]}, 422, "seeds[0]"),
    ("private 192.168", {"seeds": ["http://192.168.1.1/admin"]}, 422, "seeds[0]"),
    ("CGNAT", {"seeds": ["http://100.64.0.1/"]}, 422, "seeds[0]"),
    ("unspecified", {"seeds": ["http://0.0.0.0:8000/"]}, 422, "seeds[0]"),
    ("localhost", {"seeds": ["http://localhost:8000/"]}, 422, "seeds[0]"),
    ("sub.localhost", {"seeds": ["http://admin.localhost/"]}, 422, "seeds[0]"),
    ("credentials", {"seeds": ["http://user:secret@docs.example/"]}, 422, "seeds[0]"),
    ("userinfo confusion", {"seeds": ["http://127.0.0.1:80@evil.example/"]}, 422, "seeds[0]"),
    ("control character", {"seeds": ["http://docs.example/\nHost: 127.0.0.1"]}, 422, "seeds[0]"),
    ("space", {"seeds": ["http://docs.example/ --dir=/"]}, 422, "seeds[0]"),
    ("broken IPv6 host", {"seeds": [SITE], "feeds": ["http://[::1/feed"]}, 422, "feeds[0]"),
    ("bracket in a name", {"seeds": ["http://x.m[w)qg5]P)1+#C0"]}, 422, "seeds[0]"),
    # Huge lists and values.
    ("too many seeds", {"seeds": [f"{SITE}{n}" for n in range(101)]}, 400, "seeds"),
    ("too many sitemaps", {"sitemaps": [f"{SITE}{n}.xml" for n in range(21)]}, 400, "sitemaps"),
    ("too many patterns", {"seeds": [SITE], "deny": [f"/{n}/" for n in range(51)]}, 400, "deny"),
    ("huge URL", {"seeds": [SITE + "a" * 3000]}, 400, "seeds"),
    ("huge page budget", {"seeds": [SITE], "max_pages": 10**9}, 400, "max_pages"),
    ("negative depth", {"seeds": [SITE], "max_depth": -1}, 400, "max_depth"),
    ("seeds not a list", {"seeds": SITE}, 400, "seeds"),
    # Odd index names.
    ("index traversal", {"seeds": [SITE], "index": "../../etc"}, 422, "index"),
    ("index with a slash", {"seeds": [SITE], "index": "a/b"}, 422, "index"),
    ("index like an option", {"seeds": [SITE], "index": "--dir=/"}, 422, "index"),
    ("hidden index", {"seeds": [SITE], "index": ".hidden"}, 422, "index"),
    ("empty index", {"seeds": [SITE], "index": ""}, 400, "index"),
    ("long index", {"seeds": [SITE], "index": "x" * 65}, 400, "index"),
    # Patterns that do not compile, and fields a caller may not set.
    ("bad allow regex", {"seeds": [SITE], "allow": ["("]}, 422, "allow[0]"),
    ("bad deny regex", {"seeds": [SITE], "deny": ["[z-a]"]}, 422, "deny[0]"),
    ("forged provenance", {"seeds": [SITE], "map_url": [f"{SITE}=https://bank.example/"]}, 400, "map_url"),
    ("own allow-list", {"seeds": ["http://10.0.0.1/"], "allow_hosts": ["10.0.0.0/8"]}, 400, "allow_hosts"),
    ("local directory", {"seeds": [SITE], "dir": "/"}, 400, "dir"),
    ("engine", {"seeds": [SITE], "engine": "ray"}, 400, "engine"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: size, mtime and content hash."""
    return {
        str(path.relative_to(root)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_hostile_job_bodies_start_nothing_write_nothing_fetch_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(HOSTILE_JOBS) >= 25
    spawned: list[list[str]] = []
    lookups: list[object] = []
    real_popen = subprocess.Popen

    def record_popen(args: list[str], *rest: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        spawned.append(list(args))
        return real_popen([sys.executable, "-c", "pass"], *rest, **kwargs)

    def record_lookup(*args: object, **kwargs: object) -> list[Any]:
        lookups.append(args)
        raise OSError("no lookups in this test")

    data_dir = tmp_path / "data"
    (data_dir / "indexes" / "docs").mkdir(parents=True)
    (data_dir / "indexes" / "docs" / "vectors.faiss").write_bytes(b"an index file that must not be touched")
    with serve_directory(tmp_path) as loopback, make_app(data_dir, rate_limit_per_minute=0) as client:
        monkeypatch.setattr(subprocess, "Popen", record_popen)
        monkeypatch.setattr(socket, "getaddrinfo", record_lookup)
        before = _snapshot(data_dir)
        outcomes = []
        for name, body, status, hint in HOSTILE_JOBS:
            text = json.dumps(body).replace(LOOPBACK, loopback.base_url)
            response = client.post(
                "/v1/ingest", content=text, headers={**INGEST_KEY, "Content-Type": "application/json"}
            )
            outcomes.append((name, response.status_code))
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"].startswith("application/problem+json"), name
            assert hint in response.text, (name, response.text)
        assert client.get("/v1/ingest", headers=INGEST_KEY).json() == []
        changed = set(_snapshot(data_dir).items()) ^ set(before.items())
        refused = sum(400 <= status < 500 for _, status in outcomes)
        requests = len(lookups) + len(loopback.requests)
        report = (
            f"{len(outcomes)} hostile bodies: {refused} x 4xx, {len(spawned)} spawns,"
            f" {len(changed)} files changed, {requests} requests"
        )
        assert not changed, "no file under the data directory changed"
        assert spawned == []
        assert lookups == []
        assert loopback.requests == []
        # The harness sees a job that does start: a valid body spawns once and writes its record.
        started = client.post("/v1/ingest", json={"seeds": [SITE]}, headers=INGEST_KEY)
        assert started.status_code == 202, started.text
        assert len(spawned) == 1
        assert _snapshot(data_dir) != before
    print(report)


def test_a_job_reaches_only_the_private_networks_the_server_opened_for_ingest(tmp_path: Path) -> None:
    body = {"seeds": ["http://10.1.2.3/sleep-0.1"]}
    with make_app(tmp_path / "a", live_allow_hosts=["10.0.0.0/8"]) as client:
        refused = client.post("/v1/ingest", json=body, headers=INGEST_KEY)
        assert refused.status_code == 422, "the live allow-list does not open ingest"
        assert "private" in refused.json()["detail"]
    with make_app(tmp_path / "b", allow_hosts=["10.0.0.0/8"]) as client:
        started = client.post("/v1/ingest", json=body, headers=INGEST_KEY)
        assert started.status_code == 202, started.text
        done = wait_for(client, started.json()["id"], "succeeded")
        assert done["summary"]["spec"]["allow_hosts"] == ["10.0.0.0/8"]


def test_job_records_of_another_version_are_skipped_with_a_reason(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    good = {"id": "0123456789ab", "request": {"seeds": ["http://site.test/sleep-0.1"]}, "state": "succeeded"}
    (jobs / "0123456789ab.job.json").write_text(json.dumps(good))
    (jobs / "aaaaaaaaaaaa.job.json").write_text(json.dumps({"job": "aaaaaaaaaaaa", "status": "running"}))
    (jobs / "bbbbbbbbbbbb.job.json").write_text(json.dumps({**good, "id": "bbbbbbbbbbbb", "state": "paused"}))
    (jobs / "cccccccccccc.job.json").write_text(json.dumps({**good, "id": "../../escape"}))
    (jobs / "dddddddddddd.job.json").write_text("{not json")
    # A job that an older version left running, with a field this version refuses: marked failed.
    old = {**good, "id": "eeeeeeeeeeee", "state": "running", "request": {"seeds": [SITE], "map_url": ["a=b"]}}
    (jobs / "eeeeeeeeeeee.job.json").write_text(json.dumps(old))
    with capture_logs() as logs, make_app(tmp_path) as client:
        listed = {job["id"]: job for job in client.get("/v1/ingest", headers=INGEST_KEY).json()}
        assert client.get("/healthz").status_code == 200
    assert set(listed) == {"0123456789ab", "eeeeeeeeeeee"}
    assert listed["eeeeeeeeeeee"]["state"] == "failed"
    assert "map_url" in listed["eeeeeeeeeeee"]["error"]
    skipped = {entry["file"]: entry["reason"] for entry in logs if entry["event"] == "job record skipped"}
    assert set(skipped) == {f"{c * 12}.job.json" for c in "abcd"}
    assert all(skipped.values())
    assert not (tmp_path / "escape.spec.json").exists()


def test_a_recorded_pid_of_another_process_is_not_killed(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        jobs = tmp_path / "jobs"
        jobs.mkdir()
        record = {"id": "0123456789ab", "request": {"seeds": ["http://site.test/sleep-0.1"]}, "state": "running",
                  "pid": bystander.pid}  # fmt: skip
        (jobs / "0123456789ab.job.json").write_text(json.dumps(record))
        with make_app(tmp_path) as client:
            assert wait_for(client, "0123456789ab", "succeeded")["restarts"] == 1
        assert bystander.poll() is None, "a pid that is not the job's child is left alone"
    finally:
        bystander.kill()
        bystander.wait()


def test_the_child_takes_nothing_but_the_spec(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = citeline_env(data_dir)
    spec = JobSpec(request=IngestJobRequest(seeds=[SITE]), data_dir=str(data_dir), allow_hosts=[], url_maps=[])
    path = tmp_path / "job.spec.json"
    path.write_bytes(msgspec.json.encode(spec))
    for extra in (["--dir", "/", "--base-url", SITE], ["--allow-host", "10.0.0.0/8"], [SITE]):
        result = run_citeline(["ingest", "--job-spec", str(path), *extra], env, timeout=120)
        assert result.returncode == 2, (extra, result.stderr)
        assert "only input" in result.stderr
    # A spec edited on disk is checked again by the child, before anything is fetched or loaded.
    path.write_bytes(msgspec.json.encode(spec).replace(SITE.encode(), b"http://169.254.169.254/"))
    result = run_citeline(["ingest", "--job-spec", str(path)], env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "seeds[0]" in result.stderr
    assert not data_dir.exists()
