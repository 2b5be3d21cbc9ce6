"""Embedding speed and fidelity: torch fp32 against OpenVINO fp32 and OpenVINO int8, side by side.

The same passages, sampled from an existing index (``make demo`` builds ``python-docs``; the texts
are read from its SQLite file, read-only), are embedded by every backend at batch size 32. The
backends take turns chunk by chunk, in rotating order, so that load from other processes on the
machine slows all of them alike. Against torch (the baseline, whose vectors every existing index
holds) it reports passages/s and their ratio, the largest absolute and the mean cosine difference of
the vectors, and the quality check: for every eval question (python_faq, its paraphrases and
django_faq), whether its top-5 over a fixed passage set (the sample plus every passage of the
questions' gold pages) is the same set as torch's. "own" ranks the backend's query vectors over its
own passage vectors (an index it built); "torch index" ranks them over torch's passage vectors (an
existing index searched with it). The bar is >= 99% of queries keeping the same top-5.

OpenVINO exports are prepared under the models directory first if missing (timed apart; the first
backend loaded also pays the library imports). The default 1200 passages keep a run under 3 minutes
on 2 idle cores; ``--passages 2000`` takes about 4.

    .venv/bin/python bench/embedding.py [--passages 1200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, machine, ratio, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import EMBEDDING_BACKENDS, CitelineSettings, EmbeddingBackend, Vectors, load_embedder

SETS = ("python_faq", "python_faq_paraphrased", "django_faq")
BASELINE: EmbeddingBackend = "torch"
BAR = 0.99
TOP_K = 5
CHUNK = 256  # passages per embed call: what ingest hands the embedder at a time, 8 batches of 32


def read_passages(path: Path) -> list[tuple[int, str, str]]:
    """(passage id, text, page url) of every passage, opened read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = "SELECT p.id, p.text, g.url FROM passages p JOIN pages g ON g.id = p.page_id ORDER BY p.id"
        return [(int(i), str(t), str(u)) for i, t, u in conn.execute(sql)]
    finally:
        conn.close()


def read_questions(every: int) -> list[dict[str, Any]]:
    rows = []
    for name in SETS:
        lines = [line for line in (ROOT / "eval/sets" / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        rows += [{"set": name, **json.loads(line)} for line in lines[::every]]
    return rows


def top_k(queries: Vectors, passages: Vectors) -> list[frozenset[int]]:
    order = np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :TOP_K]
    return [frozenset(int(i) for i in row) for row in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1200, help="passages sampled for the speed run")
    parser.add_argument("--index-dir", type=Path, default=Path.home() / ".local/share/citeline/indexes/python-docs")
    parser.add_argument("--models-dir", type=Path, default=None, help="where the OpenVINO exports are cached")
    parser.add_argument("--backends", nargs="*", choices=EMBEDDING_BACKENDS, default=list(EMBEDDING_BACKENDS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="96 passages, every 10th question: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/embedding[_quick].json")
    args = parser.parse_args()
    run_started = time.perf_counter()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["CITELINE_CONFIG"] = "/nonexistent"  # a local citeline.toml must not change the figures
    sample_size = 96 if args.quick else args.passages
    backends: list[EmbeddingBackend] = [BASELINE, *(b for b in args.backends if b != BASELINE)]

    database = args.index_dir / "passages.sqlite"
    if not database.is_file():
        raise SystemExit(f"no index at {args.index_dir}: build one with `make demo` or pass --index-dir")
    rows = read_passages(database)
    sample = random.Random(args.seed).sample(rows, min(sample_size, len(rows)))
    questions = read_questions(10 if args.quick else 1)
    gold_urls = {q["gold_url"] for q in questions if q.get("gold_url")}
    sampled_ids = {row[0] for row in sample}
    gold = [row for row in rows if row[2] in gold_urls and row[0] not in sampled_ids]
    if args.quick:
        gold = gold[:64]
    texts = [row[1] for row in sample]

    settings = CitelineSettings(**({"models_dir": args.models_dir} if args.models_dir else {}))
    embedders = {}
    loads: dict[str, dict[str, float]] = {}
    for backend in backends:
        started = time.perf_counter()
        embedder = load_embedder(settings, backend=backend)
        export = getattr(embedder, "export", None)
        prepared = export.seconds if export is not None else 0.0
        loads[backend] = {"export_s": round(prepared, 1), "load_s": round(time.perf_counter() - started - prepared, 1)}
        embedder.embed(texts[: args.batch_size], batch_size=args.batch_size)  # first-call costs count for no one
        embedders[backend] = embedder

    seconds = dict.fromkeys(backends, 0.0)
    parts: dict[str, list[Vectors]] = {backend: [] for backend in backends}
    for turn, start in enumerate(range(0, len(texts), CHUNK)):
        chunk = texts[start : start + CHUNK]
        shift = turn % len(backends)
        for backend in backends[shift:] + backends[:shift]:
            began = time.perf_counter()
            parts[backend].append(embedders[backend].embed(chunk, batch_size=args.batch_size))
            seconds[backend] += time.perf_counter() - began

    gold_texts = [row[1] for row in gold]
    question_texts = [q["question"] for q in questions]
    passages = {b: np.vstack([*parts[b], embedders[b].embed(gold_texts, batch_size=args.batch_size)]) for b in backends}
    queries = {b: embedders[b].embed(question_texts, batch_size=args.batch_size) for b in backends}
    passage_urls = [row[2] for row in sample] + [row[2] for row in gold]

    base_passages, base_queries = passages[BASELINE], queries[BASELINE]
    base_top = top_k(base_queries, base_passages)
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        cosine = np.sum(passages[backend][: len(texts)] * base_passages[: len(texts)], axis=1)
        own = top_k(queries[backend], passages[backend])
        mixed = top_k(queries[backend], base_passages)
        gold_hits = [
            any(passage_urls[i] == q["gold_url"] for i in hits) for q, hits in zip(questions, own, strict=True)
        ]
        results[backend] = {
            "model_name": embedders[backend].model_name,
            **loads[backend],
            "seconds": round(seconds[backend], 2),
            "passages_per_s": round(len(texts) / seconds[backend], 1),
            "max_abs_diff": float(np.abs(passages[backend] - base_passages).max()),
            "mean_cosine_vs_torch": round(float(cosine.mean()), 6),
            "min_cosine_vs_torch": round(float(cosine.min()), 6),
            "same_top5_own": round(float(np.mean([a == b for a, b in zip(own, base_top, strict=True)])), 4),
            "same_top5_torch_index": round(float(np.mean([a == b for a, b in zip(mixed, base_top, strict=True)])), 4),
            "gold_page_in_top5": round(float(np.mean(gold_hits)), 4),
        }
        results[backend]["holds_quality"] = (
            min(results[backend]["same_top5_own"], results[backend]["same_top5_torch_index"]) >= BAR
        )
    base_rate = results[BASELINE]["passages_per_s"]
    holding = [b for b in backends if results[b]["holds_quality"]]
    fastest = max(holding, key=lambda b: results[b]["passages_per_s"]) if holding else BASELINE

    table = Table(
        title=f"all-MiniLM-L6-v2, {len(texts)} python-docs passages at batch {args.batch_size}; top-{TOP_K} of "
        f"{len(questions)} eval questions over {len(base_passages)} passages ({machine()}, "
        f"load avg {os.getloadavg()[0]:.1f})"
    )
    for column in ("backend", "model name", "passages/s", "vs torch", "max |Δ|", "mean cos", "min cos",
                   f"same top-{TOP_K} (own)", f"same top-{TOP_K} (torch index)", "gold page in top-5",
                   "load s", "export s"):  # fmt: skip
        table.add_column(column)
    for backend in backends:
        r = results[backend]
        table.add_row(
            backend, r["model_name"], f"{r['passages_per_s']:.1f}", ratio(r["passages_per_s"], base_rate),
            f"{r['max_abs_diff']:.1e}", f"{r['mean_cosine_vs_torch']:.5f}", f"{r['min_cosine_vs_torch']:.5f}",
            f"{r['same_top5_own']:.1%}", f"{r['same_top5_torch_index']:.1%}", f"{r['gold_page_in_top5']:.1%}",
            f"{r['load_s']:.1f}", f"{r['export_s']:.0f}",
        )  # fmt: skip
    console = Console(width=180)
    console.print(table)
    console.print(f"fastest backend keeping >= {BAR:.0%} of top-{TOP_K} sets: [bold]{fastest}[/]")
    path = write_results(
        "embedding_quick" if args.quick else "embedding",
        {
            "passages": len(texts),
            "quality_passages": len(base_passages),
            "questions": len(questions),
            "batch_size": args.batch_size,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "run_seconds": round(time.perf_counter() - run_started, 1),
            "bar_same_top5": BAR,
            "fastest_holding_quality": fastest,
            "backends": results,
        },
        args.out,
    )
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
