#!/usr/bin/env python3
"""Ingest each extra corpus with the real crawler from a loopback mirror, run ``citeline eval`` on
its three sets, and print one table with every corpus side by side.

For each corpus of ``check_eval_sets.CORPORA`` (Debian Reference, Debian Administrator's Handbook,
the sgt-puzzles manual): unpack the Debian package if missing, serve its HTML root on 127.0.0.1,
crawl it from its index page (link discovery is what is being exercised, not ``--dir``) into the
index named after the package, with ``--map-url`` so stored URLs are the manual's public ones,
then evaluate ``<prefix>_questions``, ``<prefix>_offcorpus`` and ``<prefix>_false_premise`` into
``bench/results/eval_<prefix>.json``. ``--table`` only prints the table of the result files there
(with the Python docs' ``eval_python_docs.json`` when present).

Usage::

    .venv/bin/python bench/eval_corpora.py [--corpus PREFIX ...] [--skip-ingest] [--retrieval-only]
    .venv/bin/python bench/eval_corpora.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

from check_eval_sets import CORPORA, Corpus  # noqa: E402  (the corpora and their public URLs, defined once)

from bench._common import serve_docs  # noqa: E402

BIN = REPO_ROOT / ".venv/bin"
RESULTS = REPO_ROOT / "bench/results"
SETS = REPO_ROOT / "eval/sets"
GATE = REPO_ROOT / "eval/gate/corpora.json"

# (column, set suffix, totals key, target, higher is better)
COLUMNS: tuple[tuple[str, str, str, float, bool], ...] = (
    ("hit@1", "questions", "hit@1", 0.85, True),
    ("hit@5", "questions", "hit@5", 0.95, True),
    ("answer accuracy", "questions", "answer_accuracy", 0.80, True),
    ("completeness (lists)", "questions", "completeness", 0.80, True),
    ("gold-page citation", "questions", "gold_citation_rate", 0.85, True),
    ("false abstention", "questions", "false_abstention_rate", 0.10, False),
    ("answered by extract", "questions", "extract_rate", -1.0, True),
    ("off-corpus abstention", "offcorpus", "abstention_accuracy", 0.95, True),
    ("false premise handled", "false_premise", "false_premise_handled", 0.80, True),
    ("p50 answer (s)", "questions", "p50_total_ms", 4000.0, False),
    ("p50 first verified sentence (s)", "questions", "p50_first_verified_sentence_ms", 2500.0, False),
    ("p50 first token (s)", "questions", "p50_ttft_ms", -1.0, False),
)


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    # The mirror is our own loopback server: no politeness delay is owed to it.
    env = dict(os.environ, HF_HUB_OFFLINE="1", CITELINE_PER_HOST_DELAY="0")
    subprocess.run(args, check=True, env=env, cwd=REPO_ROOT)


def ingest(corpus: Corpus) -> None:
    if not corpus.html_root.is_dir():
        run([str(REPO_ROOT / "scripts/fetch-debian-doc.sh"), corpus.package, f".cache/corpora/{corpus.package}"])
    with serve_docs(corpus.html_root) as base:
        host = base.removeprefix("http://").rstrip("/")
        run([
            str(BIN / "citeline"), "ingest", base + corpus.index_page, "--index", corpus.package,
            "--allow-host", host, "--map-url", f"{base}={corpus.base_url}", "--max-pages", "5000",
        ])  # fmt: skip


def evaluate(corpus: Corpus, *, retrieval_only: bool, policy: str = "strict", every: int = 1) -> Path:
    suffix = "" if policy == "strict" else f"_{policy}"
    out = RESULTS / f"eval_{corpus.prefix}{suffix}.json"
    sets = [str(SETS / f"{corpus.prefix}_{kind}.jsonl") for kind in ("questions", "offcorpus", "false_premise")]
    extra = ["--retrieval-only"] if retrieval_only else []
    extra += ["--policy", policy, "--every", str(every)]
    run([str(BIN / "citeline"), "eval", *sets, "--index", corpus.package, "--out", str(out), *extra])
    return out


def check_gate(paths: list[Path]) -> int:
    """The pinned floors of every corpus (eval/gate/corpora.json), against all result files at once:
    a corpus whose floors fail does not stop the others from being measured."""
    from citeline.service.evaluation import gate_problems

    gate = json.loads(GATE.read_text())
    totals = {str(r["name"]): r["totals"] for path in paths for r in json.loads(path.read_text())["sets"]}
    problems = gate_problems(gate, totals)
    for line in problems:
        print(f"gate: {line}")
    if problems:
        return 1
    print(f"gate passed ({len(gate['floors'])} floors)")
    return 0


def _totals(path: Path) -> dict[str, dict[str, Any]]:
    """Totals by set kind (questions / offcorpus / false_premise) of one result file."""
    by_kind: dict[str, dict[str, Any]] = {}
    for report in json.loads(path.read_text())["sets"]:
        name = str(report["name"])
        kind = next((k for k in ("offcorpus", "false_premise") if name.endswith(k)), "questions")
        by_kind.setdefault(kind, report["totals"])
    return by_kind


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f}" if key.endswith("_ms") else f"{value:.3f}"


def table(paths: dict[str, Path]) -> str:
    totals = {name: _totals(path) for name, path in paths.items() if path.exists()}
    names = list(totals)
    lines = ["| metric | target | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for label, kind, key, target, higher in COLUMNS:
        if target < 0:
            goal = "(reported)"
        elif key.endswith("_ms"):
            goal = f"≤ {target / 1000:.1f}"
        else:
            goal = f"{'≥' if higher else '≤'} {target:.2f}"
        cells = [_cell(totals[name].get(kind, {}).get(key), key) for name in names]
        lines.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA), help="only these (default: all)")
    parser.add_argument("--skip-ingest", action="store_true", help="evaluate the indexes already built")
    parser.add_argument("--retrieval-only", action="store_true", help="retrieval metrics only (no generation)")
    parser.add_argument("--table", action="store_true", help="only print the table of the existing results")
    parser.add_argument(
        "--policy", choices=["strict", "flag"], default="strict",
        help="flag keeps unsupported sentences with their citations (eval_<prefix>_flag.json), for labelling",
    )  # fmt: skip
    parser.add_argument("--every", type=int, default=1, help="every Nth question of each set")
    args = parser.parse_args()
    chosen = [CORPORA[p] for p in (args.corpus or CORPORA)]
    outputs = []
    if not args.table:
        for corpus in chosen:
            if not args.skip_ingest:
                ingest(corpus)
            outputs.append(evaluate(corpus, retrieval_only=args.retrieval_only, policy=args.policy, every=args.every))
    paths = {"python docs": RESULTS / "eval_python_docs.json"}
    paths.update({c.package: RESULTS / f"eval_{c.prefix}.json" for c in CORPORA.values()})
    print(table(paths))
    full = args.policy == "strict" and args.every == 1 and not args.retrieval_only and not args.corpus
    return check_gate(outputs) if outputs and full else 0


if __name__ == "__main__":
    raise SystemExit(main())
