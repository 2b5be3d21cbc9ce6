"""End to end: ``POST /v1/ask`` over loopback HTTP on evaluation questions, p50/p95, split into
retrieve / excerpt / generate / verify, with the prompt budget (default) and whole passages side by side.

Starts ``citeline serve`` twice on a free loopback port against an existing index (``make demo``
builds ``python-docs``): once with the default settings (whole passages in the prompt), the
baseline, and once with the prompt budget (``CITELINE_PROMPT_SOURCE_CHARS``, ``--budget-chars``). Both answer the
same questions in the same order; the answer cache is off. Quality is reported next to speed
(abstentions, answers citing the gold page), so a faster prompt that answers worse shows.

    .venv/bin/python bench/ask_latency.py --index python-docs [--every 15] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx
from _common import ROOT, free_port, machine, median, percentile, ratio, start_service, write_results
from rich.console import Console
from rich.table import Table

from citeline.service.evaluation import EvalQuestion, load_questions

SETS = (ROOT / "eval/sets/python_faq.jsonl", ROOT / "eval/sets/python_faq_paraphrased.jsonl")
TARGETS = {"total_ms": "p50 <= 5000", "ttft_ms": "p50 <= 2000"}


def ask_all(env: dict[str, str], questions: list[EvalQuestion]) -> list[dict[str, Any]]:
    port = free_port()
    process = start_service(env, port)
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            for item in questions:
                started = time.perf_counter()
                response = client.post("/v1/ask", json={"question": item.question})
                wall_ms = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                body = response.json()
                gold = item.gold_url.split("#")[0] if item.gold_url else None
                rows.append(
                    {
                        "id": item.id,
                        "wall_ms": round(wall_ms, 1),
                        **{k: body["timings"][k] for k in body["timings"]},
                        "ttft_ms": body["timings"]["time_to_first_token_ms"],
                        "prompt_tokens": body["usage"]["prompt_tokens"],
                        "abstained": body["abstained"],
                        "cites_gold": bool(gold and any(c["url"].split("#")[0] == gold for c in body["citations"])),
                    }
                )
    finally:
        process.terminate()
        process.wait(timeout=30)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    def column(key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    answered = [r for r in rows if not r["abstained"]]
    out = {
        "p50_total_ms": median(column("wall_ms")),
        "p95_total_ms": percentile(column("wall_ms"), 0.95),
        "p50_ttft_ms": median([float(r["ttft_ms"]) for r in rows if r["ttft_ms"]]),
        "p50_prompt_tokens": median([float(r["prompt_tokens"]) for r in rows if r["prompt_tokens"]]),
        "abstained": float(len(rows) - len(answered)),
        "cites_gold_share": round(sum(r["cites_gold"] for r in rows) / len(rows), 3) if rows else 0.0,
    }
    for stage in ("retrieve_ms", "excerpt_ms", "generate_ms", "verify_ms"):
        out[f"p50_{stage}"] = median(column(stage))
        out[f"p95_{stage}"] = percentile(column(stage), 0.95)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="python-docs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--every", type=int, default=15, help="every Nth question of each set (default 15: 24 q)")
    parser.add_argument("--quick", action="store_true", help="two questions per set")
    parser.add_argument("--budget-chars", type=int, default=1400, help="the budget to compare")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    questions = [q for path in SETS for q in load_questions(path, every=args.every, limit=2 if args.quick else None)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CITELINE_INDEX": args.index, "CITELINE_ANSWER_CACHE_SIZE": "0"}
    env["CITELINE_RATE_LIMIT_PER_MINUTE"] = "100000"
    if args.data_dir is not None:
        env["CITELINE_DATA_DIR"] = str(args.data_dir)
    runs = {
        "budget": ask_all({**env, "CITELINE_PROMPT_SOURCE_CHARS": str(args.budget_chars)}, questions),
        "whole": ask_all({**env, "CITELINE_PROMPT_SOURCE_CHARS": "0"}, questions),
    }
    summary = {label: summarise(rows) for label, rows in runs.items()}

    console = Console(width=160)
    table = Table(
        title=f"POST /v1/ask over loopback, {len(questions)} eval questions, index {args.index!r} ({machine()})"
    )
    for column in ("figure", "prompt budget 1400", "whole passages (default)", "ratio", "target"):
        table.add_column(column)
    budget, whole = summary["budget"], summary["whole"]
    for key, label in (
        ("p50_total_ms", "p50 total ms (client)"),
        ("p95_total_ms", "p95 total ms (client)"),
        ("p50_ttft_ms", "p50 time to first token ms"),
        ("p50_retrieve_ms", "p50 retrieve ms"),
        ("p50_excerpt_ms", "p50 excerpt ms"),
        ("p50_generate_ms", "p50 generate ms"),
        ("p95_generate_ms", "p95 generate ms"),
        ("p50_verify_ms", "p50 verify ms"),
        ("p95_verify_ms", "p95 verify ms"),
        ("p50_prompt_tokens", "p50 prompt tokens"),
    ):
        target = TARGETS.get(key.removeprefix("p50_"), "") if key.startswith("p50_") else ""
        table.add_row(label, f"{budget[key]:.0f}", f"{whole[key]:.0f}", ratio(budget[key], whole[key]), target)
    table.add_row("abstained", f"{budget['abstained']:.0f}", f"{whole['abstained']:.0f}", "", "")
    table.add_row(
        "answers citing the gold page", f"{budget['cites_gold_share']:.3f}", f"{whole['cites_gold_share']:.3f}",
        ratio(budget["cites_gold_share"], whole["cites_gold_share"]), "not lower",
    )  # fmt: skip
    console.print(table)
    path = write_results("ask_latency", {"questions": len(questions), "summary": summary, "rows": runs}, args.out)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
