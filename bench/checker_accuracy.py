"""Accuracy of the citation checker on labelled (claim, passage) pairs from real pages.

``python_docs_claims.jsonl`` and ``sqlite_docs_claims.jsonl`` hold written claims: paraphrases of
the passage and subtly unsupported ones (a changed number, a swapped name, a negation, a fact from
a neighbouring passage, an added detail). ``answers_claims.jsonl`` holds real answer sentences the
old checker accepted, labelled supported / partly / not by reading the quote alone (``partly``
counts as unsupported). "Positive" means *supported*: precision is the share of pairs the checker
accepts that really are supported (what protects readers), recall the share of supported pairs it
accepts (what keeps answers from being emptied).

Three checkers run side by side on the same pairs:

- ``before``: the cheap evidence as it was (names and numbers anywhere in the passage, qualifiers
  not compared), the baseline;
- ``cheap``: the default checker (names and numbers in the quoted span, dropped qualifiers
  rejected, no judge);
- ``judge``: the default checks plus the generator as a quoting judge for unsure pairs (its quote
  must stand in the passage and pass the checks by itself), four pairs per call as in an answer.

    .venv/bin/python bench/checker_accuracy.py [eval/checks/answers_claims.jsonl ...]
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

from citeline.indexes import load_embedder
from citeline.service.answering.verify import Verifier, VerifierConfig, VerifierStats
from citeline.service.settings import ServiceSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_SETS = [
    ROOT / "eval" / "checks" / "answers_claims.jsonl",
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
    parser.add_argument("--no-judge", action="store_true", help="skip the quoting judge (no generator: seconds)")
    args = parser.parse_args()

    settings = ServiceSettings()
    embedder = load_embedder(settings)
    generator = None if args.no_judge else settings.generator()
    checkers = {
        "before": Verifier(embedder, None, VerifierConfig(names_in_span=False, keep_qualifiers=False)),
        "cheap": Verifier(embedder, None, VerifierConfig()),
        "judge": Verifier(embedder, generator, VerifierConfig(use_judge=True, max_judged_pairs=args.batch)),
    }
    if generator is None:
        del checkers["judge"]
    console = Console(width=160)
    report: dict[str, Any] = {}
    for path in args.sets:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows: list[dict[str, Any]] = [{"id": i["id"], "kind": i["kind"], "label": i["label"]} for i in items]
        stats = VerifierStats()
        seconds = dict.fromkeys(checkers, 0.0)
        for start in range(0, len(items), args.batch):
            pairs = [(item["claim"], item["passage"]) for item in items[start : start + args.batch]]
            for name, checker in checkers.items():
                t0 = time.perf_counter()
                evidence = checker.check(pairs, stats if name == "judge" else None)
                seconds[name] += time.perf_counter() - t0
                for row, e in zip(rows[start : start + args.batch], evidence, strict=True):
                    row[name] = e.verdict == "supported"
                    if name == "judge":
                        row.update(judged=e.judged, score=round(e.score, 3))
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_kind[row["kind"]].append(row)
        table = Table(title=f"checker on {path.name}: {' / '.join(checkers)} (the first is the baseline)")
        table.add_column("kind")
        table.add_column("n", justify="right")
        for measure in ("accuracy", "precision", "recall"):
            table.add_column(f"{measure} {' / '.join(checkers)}", justify="right")
        table.add_column("precision cheap ÷ before", justify="right")
        summary = {
            kind: {name: metrics(r, name) for name in checkers} for kind, r in [("all", rows), *sorted(by_kind.items())]
        }
        for kind, m in summary.items():
            cells = [
                " / ".join(f"{m[name][measure]:.3f}" for name in checkers)
                for measure in ("accuracy", "precision", "recall")
            ]
            ratio = m["cheap"]["precision"] / m["before"]["precision"] if m["before"]["precision"] else float("nan")
            table.add_row(kind, f"{m['cheap']['n']:.0f}", *cells, f"{ratio:.2f}")
        console.print(table)
        ms = {name: round(1000 * seconds[name] / len(rows), 1) for name in checkers}
        console.print(
            f"pairs {len(rows)}; judged {stats.judged} in {stats.judge_calls} calls ({stats.judge_seconds:.1f} s);"
            f" ms per pair: " + ", ".join(f"{name} {value}" for name, value in ms.items())
        )
        report[path.name] = {
            "summary": summary,
            "judged_pairs": stats.judged,
            "judge_calls": stats.judge_calls,
            "judge_seconds": round(stats.judge_seconds, 2),
            "ms_per_pair": ms,
            "rows": rows,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
