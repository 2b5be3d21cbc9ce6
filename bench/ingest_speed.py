"""Ingest throughput: the overlapped pipeline against the serial one and the embedder alone.

Serves the Python 3.11 docs (``.cache/corpora``, ``make corpora``) on loopback with Python's
``http.server``, then crawls N pages from ``library/index.html`` into a scratch index with the real
embedder (all-MiniLM-L6-v2), twice: once serially (the loop waits while a batch is embedded: the
pipeline before issue 6, the baseline) and once overlapped (a batch is embedded and stored while
the next pages are fetched, extracted and chunked). Then the embedder alone embeds the same
passages again, in the same calls (same texts, same batch size): the floor no pipeline can beat.
Target: overlapped wall time within 15% of the embedder's own time.

Stage shares are of wall time; the stages overlap, so they may add up to more than 100%: ``fetch
wait`` is the time the pipeline waited for the next page, ``fetch Σ`` sums all downloads (eight in
flight), ``embed idle`` is the time the embedder was not running.

The whole tree (531 pages, ~13.9k passages) would take three runs of over ten minutes each on 2
cores, so the default is a fixed subset: the first 60 pages of the crawl (~1.7k passages, about
5 minutes for the three measurements on 2 idle cores). ``--quick`` crawls 30 pages (~1k passages).

    .venv/bin/python bench/ingest_speed.py [--pages 60] [--quick] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import PYTHON_DOCS, machine, ratio, serve_docs, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import Embedder, Vectors, load_embedder
from citeline.ingest import IngestOptions, IngestPipeline, IngestSettings, run_ingest

DOCS = PYTHON_DOCS
TARGET = 1.15
"""Overlapped ingest wall time / the embedder's own time on the same passages."""


class RecordingEmbedder:
    """The real embedder, remembering every call's texts so the same work can be replayed alone."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.calls: list[tuple[list[str], int]] = []

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        self.calls.append((list(texts), batch_size))
        return self._inner.embed(texts, batch_size=batch_size)


def ingest_once(embedder: RecordingEmbedder, seed: str, pages: int, *, overlap: bool) -> dict[str, Any]:
    IngestPipeline._overlap = overlap  # the serial pipeline is the baseline
    with tempfile.TemporaryDirectory() as data_dir:
        settings = IngestSettings(
            data_dir=Path(data_dir), index="bench", allow_hosts=["127.0.0.1"], per_host_delay=0.0, max_pages=pages
        )
        started = time.perf_counter()
        summary = asyncio.run(
            run_ingest([seed], settings=settings, embedder=embedder, options=IngestOptions(max_pages=pages))
        )
        wall = time.perf_counter() - started
    stages = summary.stage_seconds
    return {
        "seconds": round(wall, 2),
        "pages": summary.pages_fetched + summary.pages_not_modified,
        "pages_indexed": summary.pages_indexed,
        "passages": summary.passages_added,
        "failures": len(summary.failures),
        "pages_per_s": round((summary.pages_fetched + summary.pages_not_modified) / wall, 2),
        "passages_per_s": round(summary.passages_added / wall, 2),
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "share": {
            "fetch_wait": round(stages["fetch_wait"] / wall, 3),
            "fetch_sum": round(stages["fetch"] / wall, 3),
            "extract_chunk": round(stages["extract_chunk"] / wall, 3),
            "embed": round(stages["embed"] / wall, 3),
            "store": round(stages["store"] / wall, 3),
            "embed_idle": round(max(0.0, wall - stages["embed"]) / wall, 3),
        },
    }


def embed_alone(embedder: Embedder, calls: list[tuple[list[str], int]]) -> dict[str, Any]:
    started = time.perf_counter()
    for texts, batch_size in calls:
        embedder.embed(texts, batch_size=batch_size)
    seconds = time.perf_counter() - started
    passages = sum(len(texts) for texts, _ in calls)
    return {"seconds": round(seconds, 2), "passages": passages, "calls": len(calls),
            "passages_per_s": round(passages / seconds, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=60, help="pages crawled (the crawl's max-pages); 531 is all")
    parser.add_argument("--quick", action="store_true", help="30 pages: a smoke run")
    parser.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (default: torch's own)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/ingest.json (--quick: ingest_quick.json)"
    )
    args = parser.parse_args()
    pages = 30 if args.quick else args.pages
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["CITELINE_CONFIG"] = "/nonexistent"  # a local citeline.toml must not change the figures
    if not (DOCS / "library" / "index.html").is_file():
        raise SystemExit(f"corpus missing at {DOCS}: run `make corpora`")

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()[0]  # other work on the machine colours every figure
    settings = IngestSettings()
    model = load_embedder(settings)
    model.embed(["warm up the model"] * 64)  # first-call costs belong to neither run

    runs: dict[str, dict[str, Any]] = {}
    recorded: list[tuple[list[str], int]] = []
    with serve_docs(DOCS) as base:
        seed = f"{base}library/index.html"
        for label, overlap in (("serial (before)", False), ("overlapped", True)):
            recorder = RecordingEmbedder(model)
            runs[label] = ingest_once(recorder, seed, pages, overlap=overlap)
            recorded = recorder.calls
    IngestPipeline._overlap = True
    alone = embed_alone(model, recorded)

    serial, overlapped = runs["serial (before)"], runs["overlapped"]
    for run in runs.values():
        run["vs_embedder_alone"] = round(run["seconds"] / alone["seconds"], 3)
    table = Table(title=f"ingest of {pages} Python-docs pages over loopback, all-MiniLM-L6-v2 "
                  f"({settings.embedding_backend}; {machine()}; load {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after)")  # fmt: skip
    for column in ("figure", "serial (before)", "overlapped", "ratio", "embedder alone", "target"):
        table.add_column(column)
    for key, label in (("pages", "pages"), ("passages", "passages"), ("seconds", "wall s")):
        table.add_row(label, f"{serial[key]}", f"{overlapped[key]}", ratio(overlapped[key], serial[key]),
                      f"{alone[key]}" if key != "pages" else "", "")  # fmt: skip
    for key, label in (("pages_per_s", "pages/s"), ("passages_per_s", "passages/s")):
        table.add_row(label, f"{serial[key]:.2f}", f"{overlapped[key]:.2f}", ratio(overlapped[key], serial[key]),
                      f"{alone[key]:.2f}" if key in alone else "", "")  # fmt: skip
    for key, label in (("fetch_wait", "fetch wait"), ("fetch_sum", "fetch Σ (8 at once)"),
                       ("extract_chunk", "extract+chunk"), ("embed", "embed"), ("store", "store (index write)"),
                       ("embed_idle", "embed idle")):  # fmt: skip
        table.add_row(f"{label} % of wall", f"{serial['share'][key]:.1%}", f"{overlapped['share'][key]:.1%}",
                      ratio(overlapped["share"][key], serial["share"][key]), "", "")  # fmt: skip
    met = overlapped["vs_embedder_alone"] <= TARGET
    verdict = f"<= {TARGET} {'met' if met else 'MISSED'}"
    table.add_row("wall / embedder alone", f"{serial['vs_embedder_alone']:.2f}",
                  f"{overlapped['vs_embedder_alone']:.2f}", "", "1.00", verdict)  # fmt: skip
    Console(width=160).print(table)
    path = write_results(
        "ingest_speed_quick" if args.quick else "ingest_speed",
        {
            "pages_requested": pages,
            "quick": args.quick,
            "embedding_backend": settings.embedding_backend,
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "target_vs_embedder_alone": TARGET,
            "target_met": met,
            "runs": runs,
            "embedder_alone": alone,
        },
        args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
