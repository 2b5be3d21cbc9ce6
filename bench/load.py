"""Load test on loopback: latency and errors at 1, 2, 4 and 8 concurrent users, search and ask.

Starts ``citeline serve`` (real models, the ``python-docs`` index that ``make demo`` builds) on a
free loopback port, then runs locust headless against it, one bounded run per endpoint and user
count. Every answer to overload must be a planned one (429/503 with ``Retry-After``): the table
shows them apart from errors, and any 5xx other than a planned 503 makes the run fail.

    .venv/bin/python bench/load.py [--index python-docs] [--search-seconds 20] [--ask-seconds 60]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import free_port, start_service
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
USERS = (1, 2, 4, 8)


def serve(index: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", CITELINE_INDEX=index, CITELINE_RATE_LIMIT_PER_MINUTE="0")
    return start_service(env, port, log)


def run_locust(base: str, endpoint: str, users: int, seconds: int, work: Path) -> dict[str, Any]:
    prefix = work / f"{endpoint}-{users}"
    status_file = work / f"{endpoint}-{users}.status.json"
    env = dict(os.environ, CITELINE_LOAD_ENDPOINT=endpoint, CITELINE_LOAD_STATUS_FILE=str(status_file))
    subprocess.run(
        [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(users), "-r", str(users),
         "-t", f"{seconds}s", "--host", base, "--csv", str(prefix), "--only-summary", "--stop-timeout", "300"],
        env=env, check=False, capture_output=True,
    )  # fmt: skip
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    statuses: dict[str, int] = json.loads(status_file.read_text()) if status_file.exists() else {}
    server_errors = sum(n for code, n in statuses.items() if code.isdigit() and int(code) >= 500 and code != "503")
    return {
        "endpoint": endpoint,
        "users": users,
        "seconds": seconds,
        "requests": int(row["Request Count"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "rps": round(float(row["Requests/s"]), 2),
        "ok": sum(n for code, n in statuses.items() if code.startswith("2")),
        "planned_429": statuses.get("429", 0),
        "planned_503": statuses.get("503", 0),
        "server_errors": server_errors,
        "other": {k: v for k, v in statuses.items() if not k.startswith(("2", "429", "503"))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="python-docs")
    parser.add_argument("--search-seconds", type=int, default=20)
    parser.add_argument("--ask-seconds", type=int, default=60)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "load.json")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = serve(args.index, port, work / "serve.log")
        try:
            for endpoint, seconds in (("search", args.search_seconds), ("ask", args.ask_seconds)):
                rows.extend(run_locust(base, endpoint, users, seconds, work) for users in USERS)
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
    table = Table(title=f"load on {platform.node()} ({os.cpu_count()} cores), loopback, closed loop")
    for column in ("endpoint", "users", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "2xx", "429", "503",
                   "5xx", "other"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        other = json.dumps(r["other"]) if r["other"] else ""
        table.add_row(r["endpoint"], str(r["users"]), str(r["requests"]), str(r["rps"]), f"{r['p50_ms']:.0f}",
                      f"{r['p95_ms']:.0f}", f"{r['p99_ms']:.0f}", str(r["ok"]), str(r["planned_429"]),
                      str(r["planned_503"]), str(r["server_errors"]), other)  # fmt: skip
    Console(width=160).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "server_survived": alive}, indent=2))
    if not alive or any(r["server_errors"] or r["other"] for r in rows):
        raise SystemExit("server errors or a crash under load")


if __name__ == "__main__":
    main()
