"""A DocBook-generated manual (the Debian Reference: XHTML pages that start with an XML declaration),
crawled from its index page with the real crawler, embedder and FAISS over loopback. Before the
markup fix this crawl fetched the index page alone and reported no failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CORPORA, ROOT, StaticServer, citeline_env, run_citeline, serve_directory

pytestmark = pytest.mark.e2e

DEBIAN_REFERENCE = CORPORA / "debian-reference-en" / "usr" / "share" / "debian-reference"
PUBLIC = "https://www.debian.org/doc/manuals/debian-reference/"


@pytest.fixture(scope="module")
def manual() -> Iterator[StaticServer]:
    if not (DEBIAN_REFERENCE / "index.en.html").is_file():
        pytest.fail(f"corpus missing at {DEBIAN_REFERENCE}: run `make corpora`")
    with serve_directory(DEBIAN_REFERENCE) as server:
        yield server


def test_a_docbook_manual_is_crawled_whole_from_its_index_page(manual: StaticServer, tmp_path: Path) -> None:
    pages = sorted(path.name for path in DEBIAN_REFERENCE.glob("*.en.html"))
    assert (manual.directory / pages[0]).read_text().startswith("<?xml"), "the case this test is about"
    env = citeline_env(tmp_path)
    summary_path = tmp_path / "summary.json"
    completed = run_citeline(
        ["ingest", manual.base_url + "index.en.html", "--index", "debref", "--map-url", f"{manual.base_url}={PUBLIC}",
         "--summary-json", str(summary_path)],
        env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    assert summary["pages_failed"] == 0, summary["failures"]
    assert summary["pages_new"] == len(pages), "every chapter reached by following links"
    assert summary["left_by_cap"] == {}
    found = run_citeline(["search", "keep a package at its current version so upgrades skip it", "-i", "debref"], env)
    assert found.returncode == 0, found.stderr[-2000:]
    assert f"{PUBLIC}ch02.en.html" in found.stdout, found.stdout

    # The user-phrased question sets of this manual, retrieval only, against their pinned floors.
    sets = [str(ROOT / "eval" / "sets" / f"debref_{kind}.jsonl") for kind in ("questions", "false_premise")]
    gate = ROOT / "eval" / "gate" / "corpora_retrieval.json"
    gated = run_citeline(["eval", *sets, "--index", "debref", "--retrieval-only", "--gate", str(gate)], env)
    assert gated.returncode == 0, gated.stdout[-3000:] + gated.stderr[-2000:]
