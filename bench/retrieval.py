"""Vector search at 10k, 100k and 1M passages: each FAISS index kind against exact search (Flat), side by side.

For each size and kind: build time (training included), p50/p99 latency of single-query searches
(top 10, one FAISS thread: requests run concurrently, each on one core), recall@10 against exact
search, and memory per passage (serialized size / n, and the process RSS growth while building).

Kinds: ``flat`` (``IDMap2,Flat``, exact: the baseline); ``ivf_sq8`` (what ``indexes.VectorIndexPolicy``
builds above its threshold, with the policy's nlist, training sample and nprobe; an nprobe sweep is in
the JSON); ``hnsw_sq8`` (``IndexHNSWSQ``, M=32, efConstruction=40, for comparison only since it cannot
remove ids; efSearch is the smallest of 16/32/64/128 reaching recall 0.95), built up to ``--hnsw-max``
passages, 100k by default: at 1M its build alone exceeds the run's 6-minute budget on 2 cores, and
with build parameters reduced to M=16, efConstruction=20 it still took 216 s there and reached only
recall 0.81 at efSearch 128 (measured once, load ~8 on 2 cores; ``--hnsw-max 1000000`` builds it); and
``ivf_pq_rerank`` (IVF-PQ with 4-bit fast-scan codes, its top 100 re-ranked by exact scores on the
float vectors, which in the store would be read from SQLite: memory counts the PQ index only).

Vectors: the synthetic sizes are drawn around the real python-docs passage vectors: a real vector plus
Gaussian noise shaped by the real vectors' covariance, scaled by ``--noise``, normalised. 0.6 is
calibrated so that a synthetic set of the real set's size has the real set's nearest-neighbour
similarity and IVF recall curve (isotropic noise, or random vectors, have no such structure and make
every ANN index look worse than it is on embeddings). Queries are the real eval questions
(python_faq and its paraphrases) embedded with the index's model. The last table runs every kind on
the real 13.9k python-docs vectors with the same questions.

    .venv/bin/python bench/retrieval.py [--quick] [--sizes 10000 100000 1000000] [--index python-docs]
                                        [--hnsw-max 100000] [--build-threads N]
"""

from __future__ import annotations

import os

# On a shared machine OpenMP threads that spin while waiting for a busy core made FAISS training 5-10x
# slower with 2 threads than with 1; passive waiting keeps builds on 2 threads no slower than on 1.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import gc
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from _common import ROOT, machine, percentile, ratio, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import CitelineSettings, VectorIndexPolicy, VectorIndexSpec, index_dir, load_embedder
from citeline.indexes._vectors import configure_search, new_vector_index, train_vector_index
from citeline.service.evaluation import load_questions

K = 10
Array = np.ndarray[Any, np.dtype[Any]]
KINDS = ("flat", "ivf_sq8", "hnsw_sq8", "ivf_pq_rerank")
SETS = ("python_faq", "python_faq_paraphrased")
GOAL_P50_MS, GOAL_RECALL, GOAL_BYTES = 20.0, 0.95, 1e9
"""The issue's goals at 1M passages: p50 per query, recall@10 of exact search, index memory."""
HNSW_EF = (16, 32, 64, 128)
NPROBES = (8, 16, 32, 64, 128)
RERANK_FACTOR = 10
"""IVF-PQ candidates re-ranked: RERANK_FACTOR * K."""


@dataclass(slots=True)
class Built:
    """A built index and what building it cost."""

    search: Callable[[Array, int], Array]
    """Top-k ids of a batch of queries."""
    build_s: float
    bytes_total: int
    rss_delta_mb: float | None
    params: dict[str, Any] = field(default_factory=dict)
    tune: Callable[[int], None] | None = None
    """Sets the search-time parameter a sweep varies."""


def rss_mb() -> float | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def serialized_size(index: Any) -> int:
    """Bytes ``faiss.write_index`` writes, counted as they stream (nothing is kept or written to disk)."""
    total = 0

    def count(chunk: bytes) -> int:
        nonlocal total
        total += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total


def real_vectors(data_dir: Path, name: str) -> Array:
    conn = sqlite3.connect(f"file:{index_dir(data_dir, name) / 'passages.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT vector FROM passages ORDER BY id").fetchall()
    finally:
        conn.close()
    return np.vstack([np.frombuffer(r[0], dtype=np.float32) for r in rows])


def synthetic(real: Array, count: int, noise: float, seed: int) -> Array:
    """``count`` unit vectors, each a real vector plus noise shaped like the real vectors' spread."""
    rng = np.random.default_rng(seed)
    centred = real - real.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centred.T))
    shape = (vectors * np.sqrt(np.clip(values, 0, None))).astype(np.float32).T
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 65536):  # chunks: a million rows of noise at once would double the memory
        stop = min(count, start + 65536)
        rows = real[rng.integers(0, len(real), stop - start)]
        rows = rows + noise * (rng.standard_normal((stop - start, real.shape[1]), dtype=np.float32) @ shape)
        out[start:stop] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def nn_similarity(data: Array, sample: int = 1000) -> float:
    """Median cosine of a vector's nearest other vector, over a sample (the calibration figure)."""
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    scores, _ = index.search(data[:sample], 2)
    return float(np.median(scores[:, 1]))


def recall(found: Array, truth: Array) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def latency_ms(search: Callable[[Array, int], Array], queries: Array) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None], K)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5), percentile(times, 0.99)


def build(kind: str, data: Array, policy: VectorIndexPolicy, threads: int) -> Built:
    """Build one kind over ``data`` with ``threads`` FAISS threads; ids are row numbers."""
    n, dimension = data.shape
    faiss.omp_set_num_threads(threads)
    gc.collect()
    rss_before = rss_mb()
    started = time.perf_counter()
    params: dict[str, Any]
    tune: Callable[[int], None] | None = None
    if kind == "flat":
        index = new_vector_index(VectorIndexSpec(), dimension)
        index.add_with_ids(data, np.arange(n, dtype=np.int64))
        params = {"factory": "IDMap2,Flat"}
    elif kind == "hnsw_sq8":
        m, ef_construction = 32, 40
        index = faiss.IndexHNSWSQ(dimension, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.train(data[:: max(1, n // 50_000)])
        index.add(data)
        params = {"M": m, "efConstruction": ef_construction}

        def tune(ef: int) -> None:
            index.hnsw.efSearch = ef

    else:
        nlist = policy.nlist_for(n)
        sample = data[np.random.default_rng(policy.seed).choice(n, policy.train_size(nlist, n), replace=False)]
        nprobe = policy.nprobe_for(nlist)
        if kind == "ivf_sq8":
            index = new_vector_index(VectorIndexSpec("ivf_sq8", nlist), dimension)
            train_vector_index(index, sample, seed=policy.seed)
            index.add_with_ids(data, np.arange(n, dtype=np.int64))
            configure_search(index, policy)
            params = {"factory": f"IVF{nlist},SQ8", "nprobe": nprobe, "train_points": len(sample)}
        else:
            factory = f"IVF{nlist},PQ{dimension // 4}x4fs"
            index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
            index.train(sample)
            index.add_with_ids(data, np.arange(n, dtype=np.int64))
            index.nprobe = nprobe
            params = {"factory": factory, "nprobe": nprobe, "rerank": RERANK_FACTOR * K, "train_points": len(sample)}

        def tune(probes: int) -> None:
            index.nprobe = probes

    build_s = time.perf_counter() - started
    rss_after = rss_mb()
    delta = None if rss_before is None or rss_after is None else round(rss_after - rss_before, 1)

    def search(queries: Array, k: int) -> Array:
        if kind != "ivf_pq_rerank":
            return index.search(queries, k)[1]  # type: ignore[no-any-return]
        candidates = index.search(queries, RERANK_FACTOR * k)[1]
        out = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, raw) in enumerate(zip(queries, candidates, strict=True)):
            ids = raw[raw >= 0]
            out[row, : min(k, len(ids))] = ids[np.argsort(-(data[ids] @ query))[:k]]
        return out

    return Built(search, build_s, serialized_size(index), delta, params, tune)


def measure(
    kind: str, data: Array, queries: Array, truth: Array | None, *, policy: VectorIndexPolicy, threads: int, timed: int
) -> tuple[dict[str, Any], Array]:
    """One kind's row, and its top-k ids of the queries (exact search's are the truth the others meet)."""
    built = build(kind, data, policy, threads)
    faiss.omp_set_num_threads(threads)
    found = built.search(queries, K)
    truth = found if truth is None else truth
    faiss.omp_set_num_threads(1)
    sweep = []
    if kind == "hnsw_sq8" and built.tune is not None:
        for ef in HNSW_EF:
            built.tune(ef)
            sweep.append({"efSearch": ef, "recall": round(recall(built.search(queries, K), truth), 4)})
        chosen = next((s for s in sweep if s["recall"] >= GOAL_RECALL), sweep[-1])
        built.tune(int(chosen["efSearch"]))
        built.params["efSearch"] = chosen["efSearch"]
    elif kind == "ivf_sq8" and built.tune is not None:
        for nprobe in NPROBES:
            built.tune(nprobe)
            p50, _ = latency_ms(built.search, queries[: min(timed, 100)])
            sweep.append(
                {"nprobe": nprobe, "recall": round(recall(built.search(queries, K), truth), 4), "p50_ms": round(p50, 3)}
            )
        built.tune(int(built.params["nprobe"]))
        found = built.search(queries, K)
    p50, p99 = latency_ms(built.search, queries[:timed])
    n = len(data)
    row = {
        "kind": kind,
        "params": built.params,
        "build_s": round(built.build_s, 3),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "timed_queries": min(timed, len(queries)),
        "recall_at_10": round(recall(found, truth), 4),
        "bytes_per_passage": round(built.bytes_total / n, 1),
        "index_mb": round(built.bytes_total / 2**20, 1),
        "rss_delta_mb": built.rss_delta_mb,
        "sweep": sweep,
    }
    return row, found


def run_size(
    name: str, data: Array, queries: Array, *, kinds: list[str], policy: VectorIndexPolicy, args: argparse.Namespace
) -> list[dict[str, Any]]:
    truth = None
    if "flat" not in kinds:
        faiss.omp_set_num_threads(args.build_threads)
        exact = faiss.IndexFlatIP(data.shape[1])
        exact.add(data)
        truth = exact.search(queries, K)[1]
        del exact
    rows = []
    for kind in sorted(kinds, key=lambda k: k != "flat"):  # Flat first: its results are the truth
        if kind == "hnsw_sq8" and len(data) > args.hnsw_max:
            continue
        # A Flat scan of a million vectors takes ~0.1 s a query: fewer timed queries keep the run short.
        timed = min(args.timed_queries, max(50, 20_000_000 // len(data))) if kind == "flat" else args.timed_queries
        started = time.perf_counter()
        row, found = measure(kind, data, queries, truth, policy=policy, threads=args.build_threads, timed=timed)
        truth = found if truth is None else truth
        rows.append({"set": name, "passages": len(data), **row})
        print(f"  {name} {kind}: {time.perf_counter() - started:.1f} s", flush=True)
        gc.collect()
    return rows


def label(row: dict[str, Any]) -> str:
    params = row["params"]
    if row["kind"] == "hnsw_sq8":
        return f"HNSW{params['M']},SQ8 efC={params['efConstruction']} ef={params['efSearch']}"
    if "nprobe" in params:
        rerank = f" +rerank {params['rerank']}" if "rerank" in params else ""
        return f"{params['factory']} nprobe={params['nprobe']}{rerank}"
    return str(params["factory"])


def table(title: str, rows: list[dict[str, Any]]) -> Table:
    out = Table(title=title)
    columns = ("passages", "kind", "build s", "vs Flat", "p50 ms", "p99 ms", "p50 vs Flat", "recall@10",
               "B/passage", "vs Flat", "index MB", "RSS +MB")  # fmt: skip
    for column in columns:
        out.add_column(column, justify="left" if column == "kind" else "right")
    flat = {r["passages"]: r for r in rows if r["kind"] == "flat"}
    for row in rows:
        base = flat.get(row["passages"], row)
        out.add_row(
            f"{row['passages']:,}", label(row), f"{row['build_s']:.2f}", ratio(row["build_s"], base["build_s"]),
            f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", ratio(row["p50_ms"], base["p50_ms"]),
            f"{row['recall_at_10']:.3f}", f"{row['bytes_per_passage']:.0f}",
            ratio(row["bytes_per_passage"], base["bytes_per_passage"]), f"{row['index_mb']:.1f}",
            "-" if row["rss_delta_mb"] is None else f"{max(0.0, row['rss_delta_mb']):.0f}",
        )  # fmt: skip
    return out


def flat_slope(rows: list[dict[str, Any]]) -> float:
    """Flat p50 ms per 1000 passages, from the largest size measured (the scan dominates there)."""
    flat = max((r for r in rows if r["kind"] == "flat"), key=lambda r: r["passages"], default=None)
    return flat["p50_ms"] / flat["passages"] * 1000 if flat else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="*", choices=KINDS, default=list(KINDS))
    parser.add_argument("--quick", action="store_true", help="10k passages only, and fewer timed queries")
    parser.add_argument("--index", default="python-docs", help="the real index the vectors and model come from")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--noise", type=float, default=0.6, help="synthetic noise scale (see the docstring)")
    parser.add_argument("--timed-queries", type=int, default=100, help="single-query searches timed per kind")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size HNSW is built for")
    parser.add_argument("--build-threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.timed_queries = [10_000], 50
    os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.perf_counter()
    data_dir = args.data_dir or CitelineSettings().data_dir
    real = real_vectors(data_dir, args.index)
    embedder = load_embedder(CitelineSettings())
    questions = [q.question for s in SETS for q in load_questions(ROOT / "eval" / "sets" / f"{s}.jsonl")]
    queries = embedder.embed(questions)
    del embedder
    policy = VectorIndexPolicy()
    calibration = {
        "noise": args.noise,
        "real_nn_cosine_median": round(nn_similarity(real), 4),
        "synthetic_nn_cosine_median": round(nn_similarity(synthetic(real, len(real), args.noise, seed=1)), 4),
    }
    print(f"{len(real)} real vectors, {len(queries)} queries, calibration {calibration}", flush=True)

    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        data = synthetic(real, size, args.noise, seed=size)
        rows += run_size("synthetic", data, queries, kinds=args.kinds, policy=policy, args=args)
        del data
        gc.collect()
    real_rows = run_size(args.index, real, queries, kinds=args.kinds, policy=policy, args=args)

    console = Console(width=170)
    title = (f"Vector search, top {K}, {len(queries)} real questions, synthetic passages shaped like {args.index!r}"
             f" ({machine()}; 1 search thread, {args.build_threads} build threads)")  # fmt: skip
    console.print(table(title, rows))
    console.print(table(f"The real {args.index!r} vectors ({len(real)} passages), same questions", real_rows))
    slope = flat_slope(rows)
    chosen = {r["passages"]: policy.choose(r["passages"]).factory for r in rows}
    goals = {}
    for row in rows:
        kind = policy.choose(row["passages"]).kind
        if row["kind"] == kind:  # the kind the service would build for this count
            goals[str(row["passages"])] = {
                "kind": kind,
                "p50_ok": row["p50_ms"] <= GOAL_P50_MS,
                "recall_ok": row["recall_at_10"] >= GOAL_RECALL,
                "memory_ok": row["index_mb"] * 2**20 <= GOAL_BYTES,
            }
    summary = {
        "flat_p50_ms_per_1k_passages": round(slope, 4),
        "flat_reaches_half_budget_at": round(GOAL_P50_MS / 2 / slope * 1000) if slope else None,
        "flat_reaches_budget_at": round(GOAL_P50_MS / slope * 1000) if slope else None,
        "policy": {"ivf_min_passages": policy.ivf_min_passages, "flat_max_passages": policy.flat_max_passages},
        "chosen_by_policy": {str(n): f for n, f in chosen.items()},
        "goals_at_chosen_kind": goals,
    }
    console.print(
        f"Flat costs {slope:.3f} ms p50 per 1000 passages at {max(args.sizes):,}:"
        f" half the {GOAL_P50_MS:.0f} ms budget at ~{summary['flat_reaches_half_budget_at']:,} passages,"
        f" all of it at ~{summary['flat_reaches_budget_at']:,};"
        f" the policy switches to IVF at {policy.ivf_min_passages:,}. Chosen kinds: {summary['chosen_by_policy']}"
    )
    elapsed = time.perf_counter() - started
    payload = {
        "seconds": round(elapsed, 1),
        "queries": len(queries),
        "sizes": args.sizes,
        "search_threads": 1,
        "build_threads": args.build_threads,
        "calibration": calibration,
        "summary": summary,
        "synthetic": rows,
        "real": real_rows,
    }
    name = "retrieval_quick" if args.quick else "retrieval"
    path = write_results(name, payload, args.out)
    console.print(f"{elapsed:.0f} s; written to {path}")


if __name__ == "__main__":
    main()
