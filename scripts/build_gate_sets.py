"""Pick the small, fixed question subsets that the CI quality gate runs (deterministic).

Every 15th FAQ question (verbatim), the paraphrases of a disjoint every-15th slice (offset 7), and
every 6th off-corpus question, so the gate covers all FAQ pages without the cost of the full sets.
The gate's index holds the FAQ pages plus a few unrelated pages (see tests/e2e/test_eval_gate.py).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "eval" / "sets"
GATE = ROOT / "eval" / "gate"


def pick(source: str, target: str, step: int, offset: int = 0) -> int:
    lines = [line for line in (SETS / source).read_text().splitlines() if line.strip()]
    chosen = lines[offset::step]
    (GATE / target).write_text("\n".join(chosen) + "\n")
    return len(chosen)


def main() -> None:
    GATE.mkdir(parents=True, exist_ok=True)
    counts = {
        "faq_verbatim.jsonl": pick("python_faq.jsonl", "faq_verbatim.jsonl", 15),
        "faq_paraphrased.jsonl": pick("python_faq_paraphrased.jsonl", "faq_paraphrased.jsonl", 15, 7),
        "offcorpus.jsonl": pick("python_offcorpus.jsonl", "offcorpus.jsonl", 6),
    }
    for name, count in counts.items():
        print(f"{name}: {count}")
    pages = sorted({json.loads(line)["gold_url"] for line in (SETS / "python_faq.jsonl").read_text().splitlines()})
    print("gold pages:", len(pages))


if __name__ == "__main__":
    main()
