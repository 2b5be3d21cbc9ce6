"""What an ingest job and the generator cost concurrent readers: ``GET /v1/search`` latency idle and
while an ingest job commits pages into the same index, and ``/healthz`` latency idle, during the
ingest and while answers are generated, over loopback with the real models.

Self-contained: the Python docs are served on a loopback port, a fresh data directory gets a small
index by ``citeline ingest``, and ``citeline serve`` runs against it. Three phases, in one run so
the ratios compare like with like:

``idle``        ``--clients`` threads search (a short pause between searches) for ``--seconds``;
``ingest``      the same search load while ``POST /v1/ingest`` crawls ``--job-pages`` more pages
                into the index being searched (the job is its own process: it competes for the CPU);
``generating``  one client asks questions one after another while /healthz is probed.

/healthz is probed every 100 ms in every phase. Any 5xx is counted and reported.

    .venv/bin/python bench/concurrency.py [--clients 4] [--seconds 20] [--job-pages 30] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PYTHON_DOCS,
    free_port,
    machine,
    median,
    percentile,
    ratio,
    serve_docs,
    start_service,
    write_results,
)
from rich.console import Console
from rich.table import Table

DOCS = PYTHON_DOCS
INITIAL = ("library/json.html", "library/csv.html", "tutorial/inputoutput.html", "library/pathlib.html",
           "library/os.path.html", "tutorial/datastructures.html")  # fmt: skip
JOB_SEED = "library/index.html"
QUERIES = ("How do I read a JSON file?", "write rows to a CSV file", "open a file for reading and writing",
           "join two paths", "sort a list in place", "check whether a path exists")  # fmt: skip
QUESTIONS = ("How do I read a JSON file in Python?", "Which function writes rows to a CSV file?",
             "How do I check whether a file exists?")  # fmt: skip
THINK_S = 0.05
PROBE_EVERY_S = 0.1


class Recorder:
    """Latencies (ms) and statuses of every request of one phase, from any thread."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}
        self.server_errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def timed(self, what: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        started = time.perf_counter()
        response = call()
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            self.latency.setdefault(what, []).append(elapsed)
            if response.status_code >= 500:
                self.server_errors[what] = self.server_errors.get(what, 0) + 1
        return response


def searcher(base: str, number: int, recorder: Recorder, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:
        i = number
        while not stop.is_set():
            query = QUERIES[i % len(QUERIES)]
            recorder.timed("search", functools.partial(client.get, "/v1/search", params={"q": query, "k": 5}))
            i += 1
            stop.wait(THINK_S)


def prober(base: str, recorder: Recorder, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            recorder.timed("healthz", lambda: client.get("/healthz"))
            stop.wait(PROBE_EVERY_S)


@contextlib.contextmanager
def load(base: str, recorder: Recorder, clients: int) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=prober, args=(base, recorder, stop))]
    threads += [threading.Thread(target=searcher, args=(base, n, recorder, stop)) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def ingest_job(base: str, docs: str, pages: int, limit_s: float) -> dict[str, Any]:
    request = {"seeds": [docs + JOB_SEED], "index": "py", "max_depth": 1, "max_pages": pages}
    started = httpx.post(f"{base}/v1/ingest", json=request, timeout=30)
    started.raise_for_status()
    job_id = started.json()["id"]
    deadline = time.monotonic() + limit_s
    while (job := httpx.get(f"{base}/v1/ingest/{job_id}", timeout=30).json())["state"] == "running":
        if time.monotonic() > deadline:
            httpx.delete(f"{base}/v1/ingest/{job_id}", timeout=30)
            raise SystemExit(f"the ingest job did not finish in {limit_s:.0f} s")
        time.sleep(0.5)
    if job["state"] != "succeeded":
        raise SystemExit(f"the ingest job failed: {job}")
    summary: dict[str, Any] = job["summary"]
    return summary


def stats(recorder: Recorder) -> dict[str, Any]:
    out: dict[str, Any] = {"server_errors": recorder.server_errors}
    for what, values in recorder.latency.items():
        out[what] = {
            "count": len(values),
            "p50_ms": round(median(values), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="concurrent search clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the idle phase")
    parser.add_argument("--job-pages", type=int, default=30, help="pages the ingest job stores")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 s idle, 6 pages, one question")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (DOCS / "index.html").is_file():
        raise SystemExit(f"the Python docs are missing at {DOCS}: run `make corpora`")
    seconds, pages = (5.0, 6) if args.quick else (args.seconds, args.job_pages)
    questions = QUESTIONS[:1] if args.quick else QUESTIONS
    citeline = str(Path(sys.executable).with_name("citeline"))
    phases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="citeline-bench-") as data_dir, serve_docs() as docs:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "CITELINE_DATA_DIR": data_dir, "CITELINE_INDEX": "py",
               "CITELINE_CONFIG": "/nonexistent", "CITELINE_ALLOW_HOSTS": '["127.0.0.1"]',
               "CITELINE_PER_HOST_DELAY": "0", "CITELINE_RATE_LIMIT_PER_MINUTE": "0",
               "CITELINE_ANSWER_CACHE_SIZE": "0"}  # fmt: skip
        subprocess.run([citeline, "ingest", *(docs + p for p in INITIAL), "--max-depth", "0", "--index", "py"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_service(env, port, Path(data_dir) / "serve.log")
        try:
            httpx.post(f"{base}/v1/ask", json={"question": QUESTIONS[0]}, timeout=300)  # warm-up
            idle = Recorder()
            with load(base, idle, args.clients):
                time.sleep(seconds)
            phases["idle"] = stats(idle)
            during = Recorder()
            started = time.perf_counter()
            with load(base, during, args.clients):
                job = ingest_job(base, docs, pages, limit_s=600)
            phases["ingest"] = {**stats(during), "seconds": round(time.perf_counter() - started, 1),
                                "pages_new": job["pages_new"], "passages": job["passages_added"]}  # fmt: skip
            generating = Recorder()
            with load(base, generating, clients=0):
                for question in questions:
                    ask = functools.partial(httpx.post, f"{base}/v1/ask", json={"question": question}, timeout=300)
                    response = generating.timed("ask", ask)
                    response.raise_for_status()
            phases["generating"] = stats(generating)
        finally:
            process.terminate()
            process.wait(timeout=30)

    idle_s, ingest_s = phases["idle"]["search"], phases["ingest"]["search"]
    health = {name: phases[name]["healthz"] for name in phases}
    console = Console(width=160)
    table = Table(title=f"Concurrent readers: {args.clients} search clients, an ingest job of {pages} pages into the"
                        f" index they search, answers generated ({machine()})")  # fmt: skip
    for column in ("measure", "baseline (idle)", "under load", "ratio", "requests (idle / load)"):
        table.add_column(column)
    rows = [
        ("search p50 ms, during ingest", idle_s["p50_ms"], ingest_s["p50_ms"], idle_s["count"], ingest_s["count"]),
        ("search p95 ms, during ingest", idle_s["p95_ms"], ingest_s["p95_ms"], idle_s["count"], ingest_s["count"]),
        ("/healthz p99 ms, during ingest", health["idle"]["p99_ms"], health["ingest"]["p99_ms"],
         health["idle"]["count"], health["ingest"]["count"]),
        ("/healthz p99 ms, while generating", health["idle"]["p99_ms"], health["generating"]["p99_ms"],
         health["idle"]["count"], health["generating"]["count"]),
        ("/healthz max ms, while generating", health["idle"]["max_ms"], health["generating"]["max_ms"],
         health["idle"]["count"], health["generating"]["count"]),
    ]  # fmt: skip
    for label, baseline, loaded, n_idle, n_load in rows:
        table.add_row(label, f"{baseline:.1f}", f"{loaded:.1f}", ratio(loaded, baseline), f"{n_idle} / {n_load}")
    console.print(table)
    errors = {name: phase["server_errors"] for name, phase in phases.items()}
    console.print(f"5xx responses: {errors}. The job stored {phases['ingest']['pages_new']} pages"
                  f" ({phases['ingest']['passages']} passages) in {phases['ingest']['seconds']} s;"
                  f" {len(questions)} answers generated, p50 {phases['generating']['ask']['p50_ms'] / 1000:.1f} s."
                  " Ratios: under load / idle, same run.")  # fmt: skip
    path = write_results("concurrency", {"clients": args.clients, "job_pages": pages, "phases": phases}, args.out)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
