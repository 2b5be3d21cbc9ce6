"""Re-crawl of an unchanged site: conditional GETs (304s) against full re-fetches, side by side.

Serves the Python 3.11 docs on loopback with Python's ``http.server`` (it sends Last-Modified and
answers If-Modified-Since with 304), crawls N pages into a scratch index, then re-crawls the same
site twice: once as before issue 4 (every page fetched whole, extracted and compared by content
hash) and once with conditional GETs. Nothing is re-embedded in either re-crawl.

    .venv/bin/python bench/recrawl.py [--pages 150]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from citeline.indexes import SentenceTransformerEmbedder, load_embedder
from citeline.ingest import IngestOptions, IngestSettings, IngestSummary, run_ingest

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / ".cache/corpora/python3.11-doc/usr/share/doc/python3.11/html"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _run(settings: IngestSettings, embedder: SentenceTransformerEmbedder, seed: str, pages: int) -> IngestSummary:
    return asyncio.run(
        run_ingest(
            [seed], settings=settings, embedder=embedder, options=IngestOptions(index_name="bench", max_pages=pages)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=150)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "recrawl.json")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(DOCS)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seed = f"http://127.0.0.1:{server.server_address[1]}/library/index.html"
    with tempfile.TemporaryDirectory() as data_dir:
        base: dict[str, Any] = {"data_dir": Path(data_dir), "allow_hosts": ["127.0.0.1"], "per_host_delay": 0.0}
        embedder = load_embedder(IngestSettings())
        runs = {}
        for label, conditional in (("first crawl", True), ("re-crawl, full fetches (before)", False),
                                   ("re-crawl, conditional GET (after)", True)):  # fmt: skip
            started = time.perf_counter()
            summary = _run(IngestSettings(**base, conditional_get=conditional), embedder, seed, args.pages)
            runs[label] = {
                "seconds": round(time.perf_counter() - started, 2),
                "pages": summary.pages_fetched + summary.pages_not_modified,
                "not_modified": summary.pages_not_modified,
                "new_or_updated": summary.pages_indexed,
                "passages_embedded": summary.passages_added,
                "extract_seconds": round(summary.stage_seconds["extract_chunk"], 2),
            }
    server.shutdown()
    before = runs["re-crawl, full fetches (before)"]["seconds"]
    table = Table(title=f"re-crawl of {args.pages} unchanged Python-docs pages on {platform.node()} "
                  f"({os.cpu_count()} cores), loopback")  # fmt: skip
    for column in ("run", "seconds", "pages/s", "304s", "new/updated", "passages embedded", "extract s", "vs before"):
        table.add_column(column)
    for label, run in runs.items():
        rate = run["pages"] / run["seconds"] if run["seconds"] else 0.0
        table.add_row(label, f"{run['seconds']:.1f}", f"{rate:.1f}", str(run["not_modified"]),
                      str(run["new_or_updated"]), str(run["passages_embedded"]), f"{run['extract_seconds']:.1f}",
                      f"{run['seconds'] / before:.2f}")  # fmt: skip
    Console(width=160).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pages": args.pages, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
