"""Run every speed benchmark in turn and collect their tables: what ``make bench`` runs.

Each benchmark runs as its own process (so one's memory and threads never colour the next), its
output is kept in ``bench/results/<name>.txt`` next to the JSON it writes, and
``bench/results/SUMMARY.md`` gathers all tables with each one's duration. The whole run is meant to
fit in 20 minutes on a 2-core machine; the summary says how long it took.

    .venv/bin/python bench/all.py [--only NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import HERE, RESULTS, machine
from rich.console import Console
from rich.table import Table

BENCHMARKS: dict[str, list[str]] = {
    "embedding": ["embedding.py"],
    "ingest": ["ingest_speed.py"],
    "retrieval": ["retrieval.py"],
    "hybrid": ["hybrid.py"],
    "prompt_budget": ["prompt_budget.py"],
    "generation": ["generation.py", "--index", "python-docs"],
    "ask_latency": ["ask_latency.py", "--index", "python-docs"],
    "live_selection": ["live_selection.py"],
    "live_pages": ["live_pages.py", "--index", "python-docs"],
    "concurrency": ["concurrency.py"],
}
TIME_LIMIT_S = 20 * 60


def write_summary(names: list[str], durations: dict[str, float], failed: list[str]) -> None:
    """``SUMMARY.md``: every benchmark's latest tables and duration (``--only`` runs update theirs)."""
    record = RESULTS / "durations.json"
    known: dict[str, float] = json.loads(record.read_text()) if record.exists() else {}
    known.update({name: round(durations[name], 1) for name in names if name not in failed})
    record.write_text(json.dumps(known, indent=2) + "\n")
    total = sum(known.get(name, 0.0) for name in BENCHMARKS)
    parts = [f"# Benchmarks\n\n`make bench` on {machine()}, {time.strftime('%Y-%m-%d', time.gmtime())}: "
             f"{total:.0f} s in all, the sum of each benchmark's latest run (limit {TIME_LIMIT_S} s).\n"]  # fmt: skip
    for name in BENCHMARKS:
        output = RESULTS / f"{name}.txt"
        if output.exists() and name in known:
            parts.append(f"\n## {name} ({known[name]:.0f} s)\n\n```\n{output.read_text().rstrip()}\n```\n")
    (RESULTS / "SUMMARY.md").write_text("".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run just these")
    parser.add_argument("--quick", action="store_true", help="pass --quick to each (a smoke run, seconds each)")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}
    console = Console(width=160)
    durations: dict[str, float] = {}
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        command = [sys.executable, str(HERE / BENCHMARKS[name][0]), *BENCHMARKS[name][1:]]
        if args.quick:
            command.append("--quick")
        console.rule(f"{name}: {' '.join(command[1:])}")
        t0 = time.perf_counter()
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                sys.stdout.write(line)
                lines.append(line)
        durations[name] = time.perf_counter() - t0
        if proc.returncode != 0:
            failed.append(name)
        if not args.quick:
            (RESULTS / f"{name}.txt").write_text("".join(lines))
    total = time.perf_counter() - started

    table = Table(title=f"make bench on {machine()}")
    for column in ("benchmark", "seconds", "status"):
        table.add_column(column)
    for name in names:
        table.add_row(name, f"{durations[name]:.0f}", "FAILED" if name in failed else "ok")
    table.add_row("total", f"{total:.0f}", f"limit {TIME_LIMIT_S} s: {'within' if total <= TIME_LIMIT_S else 'OVER'}")
    console.print(table)
    if not args.quick:
        write_summary(names, durations, failed)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
