"""Latency added by live pages: ``POST /v1/ask`` with 0 (baseline), 1, 3 and 10 pages fetched at
question time, over loopback, with the real models.

The Python docs are served on a loopback port; each question names its gold page plus the first
of a fixed list of other library pages (large and small, as a user would paste them), with
``sources: both``. A first service runs with the live cache off (``CITELINE_LIVE_CACHE_TTL_S=0``),
so every request fetches, extracts and embeds its pages: the cold figures. A second, with the
cache on, asks each 3-page question twice and reports the second (the follow-up case). The live
stage (fetch + extract, then embedding the chosen passages) is reported apart from the whole
answer, whose generation time varies with what the pages put in the prompt.

    .venv/bin/python bench/live_pages.py --index python-docs [--questions 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PYTHON_DOCS,
    ROOT,
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

from citeline.service.evaluation import load_questions

DOCS = PYTHON_DOCS
PUBLIC = "https://docs.python.org/3.11/"
OTHERS = ("library/os.html", "library/json.html", "library/re.html", "library/pathlib.html", "library/shutil.html",
          "library/subprocess.html", "library/datetime.html", "library/collections.html", "library/itertools.html",
          "library/functools.html")  # fmt: skip
COUNTS = (0, 1, 3, 10)


def pages_for(gold: str, count: int, base: str) -> list[str]:
    chosen = [gold.removeprefix(PUBLIC)] + [p for p in OTHERS if p != gold.removeprefix(PUBLIC)]
    return [base + path for path in chosen[:count]]


def ask(client: httpx.Client, question: str, urls: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question}
    if urls:
        body |= {"urls": urls, "sources": "both"}
    started = time.perf_counter()
    response = client.post("/v1/ask", json=body)
    wall_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    answer = response.json()
    live = answer.get("live") or {}
    return {
        "wall_ms": round(wall_ms, 1),
        "live_ms": live.get("total_ms", 0.0),
        "fetch_ms": live.get("fetch_ms", 0.0),
        "embed_ms": live.get("embed_ms", 0.0),
        "generate_ms": answer["timings"]["generate_ms"],
        "pages": len(live.get("pages", [])),
        "skipped": len(live.get("skipped", [])),
        "passages": sum(p["passages"] for p in live.get("pages", [])),
        "abstained": answer["abstained"],
    }


def run(
    env: dict[str, str], jobs: list[tuple[str, str, list[str], int]], repeat: bool
) -> dict[str, list[dict[str, Any]]]:
    port = free_port()
    process = start_service(env, port)
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            ask(client, "How do I read a JSON file?", [])  # warm-up: the prompt prefix cache, first-call costs
            for label, question, urls, _ in jobs:
                row = ask(client, question, urls)
                if repeat:
                    row = ask(client, question, urls)  # the follow-up: pages from the cache
                rows.setdefault(label, []).append(row)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    def column(key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    return {
        "p50_wall_ms": median(column("wall_ms")),
        "p95_wall_ms": percentile(column("wall_ms"), 0.95),
        "p50_live_ms": median(column("live_ms")),
        "max_live_ms": max(column("live_ms")),
        "p50_fetch_ms": median(column("fetch_ms")),
        "p50_embed_ms": median(column("embed_ms")),
        "p50_generate_ms": median(column("generate_ms")),
        "p50_passages": median(column("passages")),
        "skipped": sum(column("skipped")),
        "abstained": float(sum(r["abstained"] for r in rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="python-docs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="one question")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (DOCS / "index.html").is_file():
        raise SystemExit(f"the Python docs are missing at {DOCS}: run `make corpora`")
    every = 30
    questions = load_questions(
        ROOT / "eval/sets/python_faq.jsonl", every=every, limit=1 if args.quick else args.questions
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CITELINE_INDEX": args.index, "CITELINE_ANSWER_CACHE_SIZE": "0",
           "CITELINE_RATE_LIMIT_PER_MINUTE": "100000", "CITELINE_ALLOW_HOSTS": '["127.0.0.1"]',
           "CITELINE_LIVE_ALLOW_HOSTS": '["127.0.0.1"]'}  # fmt: skip
    if args.data_dir is not None:
        env["CITELINE_DATA_DIR"] = str(args.data_dir)
    with serve_docs() as base:
        jobs = [(f"{n} pages", q.question, pages_for(q.gold_url or "", n, base), n) for n in COUNTS for q in questions]
        cold = run({**env, "CITELINE_LIVE_CACHE_TTL_S": "0"}, jobs, repeat=False)
        warm_jobs = [job for job in jobs if job[3] == 3]
        warm = run(env, warm_jobs, repeat=True)
    summary = {label: summarise(rows) for label, rows in cold.items()}
    summary["3 pages, cached"] = summarise(warm["3 pages"])

    console = Console(width=160)
    table = Table(title=f"POST /v1/ask with live pages (sources both, loopback), {len(questions)} questions each,"
                        f" budget 8 s ({machine()})")  # fmt: skip
    for column in ("live pages", "p50 answer ms", "ratio", "p50 live stage ms", "max live ms", "p50 fetch ms",
                   "p50 embed ms", "p50 passages", "p50 generate ms", "skipped", "abstained"):  # fmt: skip
        table.add_column(column)
    base_row = summary["0 pages"]
    for label, row in summary.items():
        table.add_row(
            label, f"{row['p50_wall_ms']:.0f}", ratio(row["p50_wall_ms"], base_row["p50_wall_ms"]),
            f"{row['p50_live_ms']:.0f}", f"{row['max_live_ms']:.0f}", f"{row['p50_fetch_ms']:.0f}",
            f"{row['p50_embed_ms']:.0f}", f"{row['p50_passages']:.0f}", f"{row['p50_generate_ms']:.0f}",
            f"{row['skipped']:.0f}", f"{row['abstained']:.0f}",
        )  # fmt: skip
    console.print(table)
    console.print("ratio: p50 answer time against the 0-page baseline of the same run. Live stage = fetch and"
                  " extract (all pages at once) + embed the chosen passages; it is what the pages add before"
                  " generation.")  # fmt: skip
    path = write_results("live_pages", {"questions": len(questions), "summary": summary, "cold": cold,
                                        "warm": warm}, args.out)  # fmt: skip
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
