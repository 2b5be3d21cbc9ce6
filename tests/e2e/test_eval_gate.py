"""The quality gate: a small real subset of the evaluation sets, answered with the real models
over an index of the real Python FAQ pages, must meet the floors pinned in eval/gate/gate.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, StaticServer, citeline_env, run_citeline

pytestmark = pytest.mark.e2e

PUBLIC = "https://docs.python.org/3.11/"
FAQ_PAGES = ["design", "extending", "general", "gui", "installed", "library", "programming", "windows"]
# Unrelated pages in the same index, so retrieval has something to get wrong.
DISTRACTORS = ["library/json.html", "library/csv.html", "tutorial/inputoutput.html", "library/pathlib.html"]
GATE = ROOT / "eval" / "gate"


def gate_seeds(base_url: str) -> list[str]:
    return [f"{base_url}faq/{page}.html" for page in FAQ_PAGES] + [base_url + page for page in DISTRACTORS]


def test_quality_gate(python_docs: StaticServer, tmp_path: Path) -> None:
    env = citeline_env(tmp_path)
    ingest = run_citeline(
        ["ingest", *gate_seeds(python_docs.base_url), "--max-depth", "0", "--index", "gate",
         "--map-url", f"{python_docs.base_url}={PUBLIC}"],
        env,
    )  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    results = tmp_path / "gate-results.json"
    completed = run_citeline(
        ["eval", str(GATE / "faq_verbatim.jsonl"), str(GATE / "faq_paraphrased.jsonl"), str(GATE / "offcorpus.jsonl"),
         "--index", "gate", "--answers", str(ROOT / "eval" / "sets" / "python_faq_answers.jsonl"),
         "--gate", str(GATE / "gate.json"), "--out", str(results)],
        env,
        timeout=1800,
    )  # fmt: skip
    report = completed.stdout + completed.stderr[-3000:]
    assert completed.returncode == 0, report
    assert "gate passed" in completed.stderr
    sets = {s["name"]: s for s in json.loads(results.read_text())["sets"]}
    assert set(sets) == {"faq_verbatim", "faq_paraphrased", "offcorpus"}
