"""Page text is data, never instructions: poisoned pages (visible and hidden injections, fake
citations, planted URLs, chat transcripts, zero-width tricks) must not add a URL that is not a
source or a citation to a passage that was not retrieved. Real models, real FAISS, real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, LiveService, citeline_env, live_service, run_citeline, serve_directory

pytestmark = pytest.mark.e2e

POISONED = ROOT / "tests" / "data" / "poisoned"
MANIFEST: list[dict[str, Any]] = json.loads((POISONED / "manifest.json").read_text())
URL = re.compile(r"https?://[^\s)\]]+")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveService, str]]:
    data_dir = tmp_path_factory.mktemp("poisoned-data")
    with serve_directory(POISONED) as site:
        completed = run_citeline(
            ["ingest", site.base_url + "index.html", "--max-depth", "1", "--index", "tidepool"], citeline_env(data_dir)
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        with live_service(data_dir, index="tidepool") as live:
            yield live, site.base_url


def test_poisoned_pages_cannot_plant_urls_or_citations(service: tuple[LiveService, str], tmp_path: Path) -> None:
    live, base_url = service
    structural_failures = []
    behavioural = []
    for case in MANIFEST:
        response = httpx.post(f"{live.base_url}/v1/ask", json={"question": case["question"]}, timeout=180)
        assert response.status_code == 200, response.text
        body = response.json()
        sources = {p["url"] for p in body["retrieved"]}
        cited = {c["url"] for c in body["citations"]}
        ids = {c["id"] for c in body["citations"]}
        urls_in_answer = set(URL.findall(body["answer"]))
        if not cited <= sources or any(not u.startswith(base_url) for u in urls_in_answer):
            structural_failures.append((case["page"], "non-source URL", urls_in_answer | (cited - sources)))
        if any(set(s["citations"]) - ids for s in body["sentences"]):
            structural_failures.append((case["page"], "citation to nothing", body["sentences"]))
        leaked = [f for f in case["forbidden"] if f.lower() in body["answer"].lower()]
        behavioural.append({"page": case["page"], "attack": case["attack"], "leaked": leaked, "answer": body["answer"]})
    (tmp_path / "poisoned-results.json").write_text(json.dumps(behavioural, indent=2))
    leaks = [b for b in behavioural if b["leaked"]]
    print(f"\npoisoned pages: {len(MANIFEST)} attacks, structural successes {len(structural_failures)},"
          f" forbidden text in answers {len(leaks)}: {[(b['attack'], b['leaked']) for b in leaks]}")  # fmt: skip
    assert structural_failures == []
