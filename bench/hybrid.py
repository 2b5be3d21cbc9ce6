"""Hybrid retrieval: dense alone (baseline) against BM25 alone, reciprocal-rank fusion of the two,
and fusion re-ranked by MMR (with and without a same-page penalty), on two corpora.

Retrieval only, no generation: for each question the top 5 passages of each mode, hit@5 (a passage
of the gold page among them, URLs compared without fragment) and MRR@5 (1 / rank of the first such
passage, 0 beyond 5), the distinct pages in the top 5, how many of the 5 come from the gold page
(what the generator gets to read: MMR's page penalty trades these for more pages), the questions a
mode wins and loses against dense, and the search latency with the question already embedded (what
BM25 and fusion add to a dense search; embedding the question costs every mode the same and is
reported apart).

Sets: python_faq (verbatim FAQ headings) and python_faq_paraphrased against the Python docs index,
django_faq against a Django docs index. A set whose index is missing is skipped with a message.
Build the Django index once with ``make django-index`` (690 pages; about 30 minutes on 2 busy cores).

    .venv/bin/python bench/hybrid.py [--quick] [--python-data-dir DIR] [--python-index NAME]
                                     [--django-data-dir DIR] [--django-index NAME]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
from _common import ROOT, machine, median, percentile, ratio, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import (
    RRF_K,
    CitelineSettings,
    HybridRetriever,
    IndexNotFoundError,
    PassageIndex,
    RetrievalMode,
    SearchHit,
    load_embedder,
)
from citeline.service.evaluation import EvalQuestion, load_questions

K = 5
SETS = (
    ("python_faq", "python"),
    ("python_faq_paraphrased", "python"),
    ("django_faq", "django"),
)


@dataclass(frozen=True, slots=True)
class Config:
    """One row of the table: a retrieval mode, with or without MMR and its page penalty."""

    name: str
    mode: RetrievalMode
    mmr: bool = False
    page_penalty: float = 0.0


def configs(page_penalty: float) -> list[Config]:
    return [
        Config("dense", "dense"),
        Config("bm25", "bm25"),
        Config("hybrid (RRF)", "hybrid"),
        Config("dense + MMR", "dense", mmr=True),
        Config(f"dense + MMR + page {page_penalty:g}", "dense", mmr=True, page_penalty=page_penalty),
        Config("hybrid + MMR", "hybrid", mmr=True),
        Config(f"hybrid + MMR + page {page_penalty:g}", "hybrid", mmr=True, page_penalty=page_penalty),
    ]


def same_page(url: str, gold: str) -> bool:
    """As ``service.evaluation``: the same page whatever the fragment or a trailing slash."""
    return url.split("#", 1)[0].rstrip("/") == gold.split("#", 1)[0].rstrip("/")


def gold_rank(hits: list[SearchHit], gold: str) -> int | None:
    return next((i for i, h in enumerate(hits, start=1) if same_page(h.url, gold)), None)


def run_config(
    retriever: HybridRetriever, config: Config, questions: list[EvalQuestion], vectors: Any
) -> tuple[dict[str, Any], list[int | None]]:
    retriever.page_penalty = config.page_penalty
    ranks: list[int | None] = []
    latencies: list[float] = []
    pages: list[int] = []
    gold_passages: list[int] = []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        hits = retriever.search(question.question, K, config.mode, mmr=config.mmr, vector=vector)
        latencies.append((time.perf_counter() - started) * 1000)
        ranks.append(gold_rank(hits, question.gold_url or ""))
        pages.append(len({h.page_id for h in hits}))
        gold_passages.append(sum(same_page(h.url, question.gold_url or "") for h in hits))
    count = len(questions)
    summary = {
        "mode": config.mode,
        "mmr": config.mmr,
        "page_penalty": config.page_penalty,
        "hit_at_5": round(sum(r is not None for r in ranks) / count, 4),
        "mrr_at_5": round(sum(1 / r for r in ranks if r is not None) / count, 4),
        "pages_in_top5": round(sum(pages) / count, 2),
        "gold_passages_in_top5": round(sum(gold_passages) / count, 2),
        "p50_ms": round(median(latencies), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
    }
    return summary, ranks


def open_corpus(data_dir: Path, name: str) -> PassageIndex | None:
    try:
        return PassageIndex.open(data_dir, name)
    except IndexNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-data-dir", type=Path, default=None)
    parser.add_argument("--python-index", default="python-docs")
    parser.add_argument("--django-data-dir", type=Path, default=None)
    parser.add_argument("--django-index", default="django-docs")
    parser.add_argument("--quick", action="store_true", help="every 10th question only: a smoke test in seconds")
    parser.add_argument("--mmr-lambda", type=float, default=0.7)
    parser.add_argument("--page-penalty", type=float, default=0.15, help="MMR penalty for a page already picked")
    parser.add_argument("--mmr-pool", type=int, default=20, help="fused candidates MMR re-ranks")
    parser.add_argument("--depth", type=int, default=20, help="candidates taken from each ranking")
    parser.add_argument("--rrf-k", type=int, default=RRF_K)
    parser.add_argument(
        "--faiss-threads",
        type=int,
        default=1,
        help="OpenMP threads for FAISS (0: its default); on 2 busy cores its default spins a flat search to ~50 ms",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/hybrid.json (--quick: hybrid_quick.json)"
    )
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.faiss_threads:
        faiss.omp_set_num_threads(args.faiss_threads)
    console = Console(width=170)

    locations = {
        "python": (args.python_data_dir or CitelineSettings().data_dir, args.python_index),
        "django": (args.django_data_dir or CitelineSettings().data_dir, args.django_index),
    }
    embedder = load_embedder(CitelineSettings())
    rows = configs(args.page_penalty)
    corpora: dict[str, Any] = {}
    retrievers: dict[str, HybridRetriever] = {}
    results: dict[str, Any] = {}
    skipped: list[str] = []
    for set_name, corpus in SETS:
        data_dir, index_name = locations[corpus]
        if corpus not in retrievers:
            index = open_corpus(data_dir, index_name)
            if index is None:
                message = f"{set_name}: no index {index_name!r} in {data_dir} (see the module docstring to build it)"
                console.print(f"[yellow]skipped[/] {message}")
                skipped.append(message)
                continue
            retriever = HybridRetriever(
                index, embedder, depth=args.depth, rrf_k=args.rrf_k, mmr_lambda=args.mmr_lambda, mmr_pool=args.mmr_pool
            )
            lexical = retriever.lexical  # built (or loaded) here, not in the first timed search
            retrievers[corpus] = retriever
            manifest = index.manifest()
            corpora[corpus] = {
                "index": index_name,
                "data_dir": str(data_dir),
                "pages": manifest.pages,
                "passages": manifest.passages,
                "bm25_source": lexical.stats.source,
                "bm25_open_s": round(lexical.stats.seconds, 2),
            }
        retriever = retrievers[corpus]
        every = 10 if args.quick else 1
        questions = [q for q in load_questions(ROOT / f"eval/sets/{set_name}.jsonl", every=every) if q.gold_url]
        started = time.perf_counter()
        vectors = embedder.embed([q.question for q in questions])
        embed_ms = (time.perf_counter() - started) * 1000 / max(1, len(questions))
        per_config: dict[str, Any] = {}
        all_ranks: dict[str, list[int | None]] = {}
        for config in rows:
            per_config[config.name], all_ranks[config.name] = run_config(retriever, config, questions, vectors)
        dense_ranks = all_ranks["dense"]
        for name, ranks in all_ranks.items():
            pairs = list(zip(ranks, dense_ranks, strict=True))
            per_config[name]["wins_vs_dense"] = sum(r is not None and d is None for r, d in pairs)
            per_config[name]["losses_vs_dense"] = sum(r is None and d is not None for r, d in pairs)
        results[set_name] = {
            "corpus": corpus,
            "questions": len(questions),
            "embed_ms_per_question": round(embed_ms, 2),
            "configs": per_config,
        }

    table = Table(
        title=f"retrieval top-{K}: dense (baseline) vs BM25 vs hybrid, ratios vs dense, on {machine()}"
        f" (RRF k={args.rrf_k}, depth {args.depth}, MMR λ={args.mmr_lambda:g} over {args.mmr_pool},"
        f" FAISS threads {args.faiss_threads or 'default'})"
    )
    for column in ("set", "mode", "hit@5", "vs dense", "MRR@5", "vs dense", "won/lost", "pages/5", "gold/5",
                   "p50 ms", "p95 ms", "+p50 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column in {"set", "mode"} else "right")
    for set_name, result in results.items():
        dense = result["configs"]["dense"]
        for index, (name, row) in enumerate(result["configs"].items()):
            label = f"{set_name} ({result['questions']})" if index == 0 else ""
            table.add_row(
                label, name, f"{row['hit_at_5']:.3f}", ratio(row["hit_at_5"], dense["hit_at_5"]),
                f"{row['mrr_at_5']:.3f}", ratio(row["mrr_at_5"], dense["mrr_at_5"]),
                f"+{row['wins_vs_dense']}/-{row['losses_vs_dense']}", f"{row['pages_in_top5']:.1f}",
                f"{row['gold_passages_in_top5']:.2f}",
                f"{row['p50_ms']:.2f}", f"{row['p95_ms']:.2f}", f"{row['p50_ms'] - dense['p50_ms']:+.2f}",
            )  # fmt: skip
        table.add_section()
    console.print(table)
    for corpus, info in corpora.items():
        console.print(
            f"{corpus}: {info['index']} ({info['pages']} pages, {info['passages']} passages),"
            f" BM25 {info['bm25_source']} in {info['bm25_open_s']:.1f} s"
        )
    for set_name, result in results.items():
        console.print(f"{set_name}: embedding a question {result['embed_ms_per_question']:.1f} ms (every mode)")

    path = write_results(
        "hybrid_quick" if args.quick else "hybrid",
        {
            "quick": args.quick,
            "k": K,
            "settings": {
                "faiss_threads": args.faiss_threads or faiss.omp_get_max_threads(),
                "rrf_k": args.rrf_k,
                "depth": args.depth,
                "mmr_lambda": args.mmr_lambda,
                "mmr_pool": args.mmr_pool,
            },
            "corpora": corpora,
            "sets": results,
            "skipped": skipped,
        },
        args.out,
    )
    console.print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
