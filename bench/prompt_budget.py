"""How much of the answer survives the prompt budget: source characters and prompt tokens against
what the excerpts keep, per budget, on two corpora, with whole passages as the baseline.

For each question the passages are retrieved as answers retrieve them; each budget's excerpts are
compared with the whole passages (each cut at 600 characters, as before the budget):

- answer strings kept: of the hand-written answer strings (``python_faq_answers.jsonl``) found in
  the whole passages, the share still in the excerpts;
- reference coverage: the share of the gold answer's content words (the FAQ entry's own text)
  present in the shown sources, relative to whole passages.

No generation: this picks the budget cheaply; ``bench/ask_latency.py`` then checks the answers.

    .venv/bin/python bench/prompt_budget.py [--budgets 800 1000 1400 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, machine, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import Embedder, PassageIndex, Vectors, load_embedder
from citeline.service.answering import Retriever
from citeline.service.answering.budget import BudgetConfig, excerpts
from citeline.service.answering.citations import content_tokens
from citeline.service.settings import ServiceSettings


class CachingEmbedder:
    """Embeds each distinct text once: every budget re-scores the same sentences."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_name, self.dimension = inner.model_name, inner.dimension
        self._cache: dict[str, Vectors] = {}

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self.inner.embed(missing, batch_size=batch_size), strict=True))
        if not texts:
            return self.inner.embed([])
        return np.vstack([self._cache[t] for t in texts])


SETS = {
    "python_faq": (ROOT / "eval/sets/python_faq.jsonl", "python-docs", None),
    "python_faq_paraphrased": (ROOT / "eval/sets/python_faq_paraphrased.jsonl", "python-docs", None),
    "django_faq": (ROOT / "eval/sets/django_faq.jsonl", "django-docs", None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[800, 1000, 1200, 1400, 2000])
    parser.add_argument("--django-data-dir", type=Path, default=None, help="where the django-docs index lives")
    parser.add_argument("--quick", action="store_true", help="every 9th question (default: every 3rd)")
    parser.add_argument("--carry", type=float, default=BudgetConfig().carry)
    parser.add_argument("--lead-bonus", type=float, default=BudgetConfig().lead_bonus)
    parser.add_argument("--passage-weight", type=float, default=BudgetConfig().passage_weight)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = ServiceSettings()
    embedder = CachingEmbedder(load_embedder(settings))
    retriever = Retriever(embedder, settings.retrieval_config())
    answers = {}
    for line in (ROOT / "eval/sets/python_faq_answers.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            answers[row["id"]] = row["answer_contains"]

    results: dict[str, Any] = {}
    for name, (path, index_name, set_data_dir) in SETS.items():
        data_dir = (args.django_data_dir or set_data_dir) if name.startswith("django") else settings.data_dir
        try:
            index = PassageIndex.open(data_dir or settings.data_dir, index_name)
        except Exception as exc:  # a missing corpus skips its set, with the reason
            print(f"skipping {name}: {exc}")
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = rows[:: 9 if args.quick else 3]
        per_budget: dict[int, dict[str, list[float]]] = {
            b: {"chars": [], "kept": [], "coverage": []} for b in args.budgets
        }
        whole_chars: list[float] = []
        for row in rows:
            vector = embedder.embed([row["question"]])[0]
            hits = retriever.search(index, row["question"], settings.top_k, vector=vector)
            whole = [h.text[:600] for h in hits]
            whole_text = " ".join(whole).lower()
            whole_chars.append(sum(len(t) for t in whole))
            reference = content_tokens(row.get("reference", ""))
            whole_cover = len(reference & content_tokens(whole_text))
            wanted = [a for a in answers.get(row["id"], []) if a.lower() in whole_text]
            for budget in args.budgets:
                shown = excerpts(
                    row["question"],
                    vector,
                    hits,
                    embedder,
                    BudgetConfig(
                        max_chars=budget,
                        carry=args.carry,
                        passage_weight=args.passage_weight,
                        lead_bonus=args.lead_bonus,
                    ),
                )
                shown_text = " ".join(shown).lower()
                stats = per_budget[budget]
                stats["chars"].append(sum(len(t) for t in shown))
                if wanted:
                    stats["kept"].append(sum(a.lower() in shown_text for a in wanted) / len(wanted))
                if whole_cover:
                    stats["coverage"].append(len(reference & content_tokens(shown_text)) / whole_cover)
        results[name] = {
            "questions": len(rows),
            "whole_p50_chars": statistics.median(whole_chars),
            "budgets": {
                str(b): {
                    "p50_chars": statistics.median(s["chars"]),
                    "answer_strings_kept": round(statistics.fmean(s["kept"]), 3) if s["kept"] else None,
                    "answer_string_questions": len(s["kept"]),
                    "reference_coverage": round(statistics.fmean(s["coverage"]), 3) if s["coverage"] else None,
                }
                for b, s in per_budget.items()
            },
        }
        index.close()

    console = Console(width=160)
    table = Table(title=f"prompt budget: what the excerpts keep vs whole passages (=1.0), {machine()}")
    for column in ("set", "budget chars", "p50 source chars", "ratio vs whole", "answer strings kept",
                   "gold-answer words kept"):  # fmt: skip
        table.add_column(column)
    for name, result in results.items():
        table.add_row(name, "whole (baseline)", f"{result['whole_p50_chars']:.0f}", "1.00", "1.000", "1.000")
        for budget, figures in result["budgets"].items():
            kept = figures["answer_strings_kept"]
            table.add_row(
                "", budget, f"{figures['p50_chars']:.0f}", f"{figures['p50_chars'] / result['whole_p50_chars']:.2f}",
                "-" if kept is None else f"{kept:.3f} (n={figures['answer_string_questions']})",
                "-" if figures["reference_coverage"] is None else f"{figures['reference_coverage']:.3f}",
            )  # fmt: skip
    console.print(table)
    path = write_results("prompt_budget", {"sets": results}, args.out)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
