"""Which passages of a live page get embedded: does the BM25 preselection keep the passages dense
retrieval would pick from the whole page? Python (paraphrased FAQ) and Django FAQ questions, with
their gold page alone, with 2 and with 9 other large library pages (as in ``live_pages.py``).

Embedding every passage of every page is the baseline: "kept" is the share of questions whose
dense-best passage (over all pages) is among those chosen, "top-3 kept" the share of the dense
top 3. Pages are read from the local corpora (no HTTP: this measures the choice, not the fetch).

    .venv/bin/python bench/live_selection.py [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, machine, median, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import CitelineSettings, PageRecord, Vectors, load_embedder
from citeline.ingest import ChunkSizes, chunk, embedding_text, extract
from citeline.service.live import LivePage, select_passages

CORPORA = {
    "python": (ROOT / ".cache/corpora/python3.11-doc/usr/share/doc/python3.11/html", "https://docs.python.org/3.11/",
               ROOT / "eval/sets/python_faq_paraphrased.jsonl", 4),
    "django": (ROOT / ".cache/corpora/python-django-doc/usr/share/doc/python-django-doc/html",
               "https://docs.djangoproject.com/en/stable/", ROOT / "eval/sets/django_faq.jsonl", 2),
}  # fmt: skip
OTHERS = ("os", "json", "re", "pathlib", "shutil", "subprocess", "datetime", "collections", "itertools")
CONFIGS = ((12, 48), (24, 64), (1000, 100000))  # (per page, total); the last embeds everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few questions per corpus")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    embedder = load_embedder(CitelineSettings())
    cache: dict[Path, tuple[LivePage, Vectors]] = {}

    def load(path: Path) -> tuple[LivePage, Vectors]:
        if path not in cache:
            page = extract(path.read_text(errors="replace"), "http://local/")
            passages = chunk(page.text, page.headings, ChunkSizes())
            texts = [embedding_text(page.title, p.heading, p.text) for p in passages]
            record = PageRecord(url=str(path), title=page.title, text=page.text)
            cache[path] = (LivePage(record, passages, texts, 0.0), embedder.embed(texts))
        return cache[path]

    python_library = CORPORA["python"][0] / "library"
    others = [python_library / f"{name}.html" for name in OTHERS]
    rows: list[dict[str, object]] = []
    for corpus, (local, public, questions_file, every) in CORPORA.items():
        items = [json.loads(line) for line in questions_file.read_text().splitlines() if line.strip()][::every]
        items = items[:4] if args.quick else items
        for pages_count in (1, 3, 10):
            for per_page, total in CONFIGS:
                kept = top3 = 0.0
                counts: list[float] = []
                asked = 0
                for item in items:
                    gold = local / item["gold_url"].removeprefix(public).split("#")[0]
                    if not gold.is_file():
                        continue
                    loaded = [load(p) for p in [gold, *[o for o in others if o != gold][: pages_count - 1]]]
                    chosen = select_passages(item["question"], [page for page, _ in loaded], per_page, total)
                    query = embedder.embed([item["question"]])[0]
                    scored = sorted(
                        (
                            (float(v @ query), n, i)
                            for n, (_, vectors) in enumerate(loaded)
                            for i, v in enumerate(vectors)
                        ),
                        reverse=True,
                    )
                    kept += scored[0][2] in chosen[scored[0][1]]
                    top3 += sum(i in chosen[n] for _, n, i in scored[:3]) / 3
                    counts.append(float(sum(len(c) for c in chosen)))
                    asked += 1
                label = "all passages" if per_page >= 1000 else f"{per_page}/page, {total} in all"
                rows.append({"corpus": corpus, "pages": pages_count, "selection": label, "questions": asked,
                             "kept": round(kept / asked, 3), "top3_kept": round(top3 / asked, 3),
                             "p50_embedded": median(counts), "max_embedded": max(counts)})  # fmt: skip
    table = Table(title=f"Live passages chosen by BM25 vs dense retrieval over whole pages ({machine()})")
    for column in ("corpus", "pages", "selection", "questions", "dense-best kept", "top-3 kept", "p50 embedded",
                   "max embedded"):  # fmt: skip
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[k]) for k in ("corpus", "pages", "selection", "questions", "kept", "top3_kept",
                                              "p50_embedded", "max_embedded")))  # fmt: skip
    console = Console(width=160)
    console.print(table)
    console.print("The embedding cost is the passages embedded divided by about 30 passages/s (bench/embedding.py).")
    console.print(f"written to {write_results('live_selection', {'rows': rows}, args.out)}")


if __name__ == "__main__":
    main()
