"""The same path on a second, unrelated documentation site (SQLite), so nothing is tuned to the
Python docs alone: crawl from one page with link following, answer, cite, abstain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveService, StaticServer, assert_quote_on_page, citeline_env, live_service, run_citeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(sqlite_docs: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    data_dir = tmp_path_factory.mktemp("sqlite-data")
    completed = run_citeline(
        ["ingest", sqlite_docs.base_url + "lang_altertable.html", sqlite_docs.base_url + "lang_vacuum.html",
         "--max-depth", "1", "--max-pages", "25", "--index", "sqlite",
         "--summary-json", str(data_dir / "summary.json")],
        citeline_env(data_dir),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((data_dir / "summary.json").read_text())
    assert summary["pages_fetched"] == 25 - len(summary["failures"])
    assert summary["pages_indexed"] >= 15
    with live_service(data_dir, index="sqlite") as live:
        yield live


def test_rename_table_answer_cites_alter_table(service: LiveService, sqlite_docs: StaticServer) -> None:
    body = service.ask("How do I rename a table in SQLite?")
    assert body["abstained"] is False, body
    assert "RENAME" in body["answer"].upper()
    cited = {c["url"] for c in body["citations"]}
    assert sqlite_docs.base_url + "lang_altertable.html" in cited
    for citation in body["citations"]:
        page = (sqlite_docs.directory / citation["url"].removeprefix(sqlite_docs.base_url)).read_text()
        assert_quote_on_page(citation["quote"], page)


def test_off_corpus_question_abstains(service: LiveService) -> None:
    body = service.ask("What is the population of Lisbon?")
    assert body["abstained"] is True, body
    assert body["citations"] == []


def test_index_files_are_consistent(service: LiveService) -> None:
    from citeline.indexes import PassageIndex

    index = PassageIndex.open(Path(service.data_dir), "sqlite")
    assert index.check_integrity() == []
    manifest = json.loads((index.path / "manifest.json").read_text())
    assert manifest["embedding_model"] == "all-MiniLM-L6-v2"
    assert manifest["dimension"] == 384
