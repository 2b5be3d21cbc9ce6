"""Accuracy of the citation checker on labelled (claim, passage) pairs from real pages.

The sets in ``eval/checks/`` hold supported claims (paraphrases of the passage) and subtly
unsupported ones (a changed number, a swapped name, a negation, a fact from a neighbouring
passage, an added detail). "Positive" means *supported*: precision is the share of pairs the
checker accepts that really are supported (what protects readers), recall the share of supported
pairs it accepts (what keeps answers from being emptied).

Two checkers run side by side on the same pairs: the cheap evidence alone (unsure counts as
unsupported) as the baseline, and the default checker (cheap evidence + the generator as a
yes/no judge for unsure pairs, four pairs per prompt as in an answer).

    .venv/bin/python bench/checker_accuracy.py [eval/checks/python_docs_claims.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from indexes import load_embedder
from service.settings import ServiceSettings
from service.verify import Verifier, VerifierConfig, VerifierStats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_SETS = [
    ROOT / "eval" / "checks" / "python_docs_claims.jsonl",
    ROOT / "eval" / "checks" / "sqlite_docs_claims.jsonl",
]


def metrics(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    tp = sum(1 for r in rows if r[key] and r["label"] == "supported")
    fp = sum(1 for r in rows if r[key] and r["label"] != "supported")
    fn = sum(1 for r in rows if not r[key] and r["label"] == "supported")
    correct = sum(1 for r in rows if r[key] == (r["label"] == "supported"))
    return {
        "accuracy": correct / len(rows) if rows else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "n": float(len(rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", type=Path, default=DEFAULT_SETS)
    parser.add_argument("--batch", type=int, default=4, help="pairs per check call (as in one answer)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "checker_accuracy.json")
    args = parser.parse_args()

    settings = ServiceSettings()
    embedder = load_embedder(settings)
    generator = settings.generator()
    cheap = Verifier(embedder, None, VerifierConfig(use_judge=False))
    full = Verifier(embedder, generator, VerifierConfig(max_judged_pairs=args.batch))
    console = Console(width=150)
    report: dict[str, Any] = {}
    for path in args.sets:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows: list[dict[str, Any]] = []
        stats = VerifierStats()
        cheap_seconds = full_seconds = 0.0
        for start in range(0, len(items), args.batch):
            batch = items[start : start + args.batch]
            pairs = [(item["claim"], item["passage"]) for item in batch]
            t0 = time.perf_counter()
            cheap_evidence = cheap.check(pairs)
            cheap_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            full_evidence = full.check(pairs, stats)
            full_seconds += time.perf_counter() - t0
            for item, c, f in zip(batch, cheap_evidence, full_evidence, strict=True):
                rows.append(
                    {
                        "id": item["id"],
                        "kind": item["kind"],
                        "label": item["label"],
                        "cheap": c.verdict == "supported",
                        "full": f.verdict == "supported",
                        "judged": f.judged,
                        "score": round(f.score, 3),
                    }
                )
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_kind[row["kind"]].append(row)
        table = Table(title=f"checker on {path.name}: cheap evidence alone (baseline) vs with the judge")
        for column in ("kind", "n", "cheap acc", "judge acc", "cheap prec", "judge prec", "cheap rec", "judge rec"):
            table.add_column(column)
        summary = {"all": (metrics(rows, "cheap"), metrics(rows, "full"))}
        summary.update({kind: (metrics(r, "cheap"), metrics(r, "full")) for kind, r in sorted(by_kind.items())})
        for kind, (c, f) in summary.items():
            table.add_row(
                kind, f"{c['n']:.0f}", f"{c['accuracy']:.3f}", f"{f['accuracy']:.3f}", f"{c['precision']:.3f}",
                f"{f['precision']:.3f}", f"{c['recall']:.3f}", f"{f['recall']:.3f}",
            )  # fmt: skip
        console.print(table)
        judged_share = stats.judged / len(rows) if rows else 0.0
        console.print(
            f"pairs {len(rows)}; judged {stats.judged} ({judged_share:.0%}) in {stats.judge_calls} prompts;"
            f" cheap {1000 * cheap_seconds / len(rows):.0f} ms/pair, with judge {1000 * full_seconds / len(rows):.0f}"
            f" ms/pair ({stats.judge_seconds:.1f} s in the judge)"
        )
        report[path.name] = {
            "summary": {k: {"cheap": c, "with_judge": f} for k, (c, f) in summary.items()},
            "judged_pairs": stats.judged,
            "judge_calls": stats.judge_calls,
            "judge_seconds": round(stats.judge_seconds, 2),
            "cheap_ms_per_pair": round(1000 * cheap_seconds / len(rows), 1),
            "full_ms_per_pair": round(1000 * full_seconds / len(rows), 1),
            "rows": rows,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
