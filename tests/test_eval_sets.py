"""scripts/check_eval_sets.py: the hand-written sets of the extra corpora and the checks on them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_eval_sets", REPO / "scripts/check_eval_sets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


checker = _load_checker()

BASE = "https://manual.example/"
PAGE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Chapter 1. Packages</title></head><body>
<div class="chapter"><div class="titlepage"><h1 class="title"><a id="_packages"/>Chapter 1. Packages</h1></div>
<div class="section"><div class="titlepage"><h2 class="title"><a id="_files"/>1.1. Files</h2></div>
<p>Run dpkg&#160;-S with a file name pattern to find the installed package that owns a file.</p></div>
<div class="section"><div class="titlepage"><h2 class="title"><a id="_cache"/>1.2. Cache</h2></div>
<p>Fetched packages stay in /var/cache/apt/archives until they are cleaned.</p></div>
<script>var hidden = "apt-get autoclean";</script>
</div></body></html>
"""


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _question(rid: str, terms: list[str], anchor: str | None = "_files", page: str = "ch01.html") -> dict[str, Any]:
    record: dict[str, Any] = {"id": f"toy/{rid}", "question": "which package owns this file", "gold_url": BASE + page}
    if anchor:
        record["gold_anchor"] = anchor
    record["answer_contains"] = terms
    return record


def _corpus(tmp_path: Path, questions: list[dict[str, Any]]) -> tuple[Any, Path]:
    root = tmp_path / "html"
    root.mkdir()
    (root / "ch01.html").write_text(PAGE, encoding="utf-8")
    (tmp_path / "secret.html").write_text(PAGE, encoding="utf-8")
    sets = tmp_path / "sets"
    sets.mkdir()
    _write(sets / "toy_questions.jsonl", questions)
    _write(sets / "toy_offcorpus.jsonl", [{"id": "offcorpus/01", "question": "who won", "answerable": False}])
    _write(
        sets / "toy_false_premise.jsonl",
        [
            {
                "id": "premise/cache-forever",
                "question": "why does apt keep fetched packages forever",
                "answerable": True,
                "false_premise": True,
                "gold_url": BASE + "ch01.html",
                "gold_anchor": "_cache",
                "premise_correction": ["until they are cleaned"],
            }
        ],
    )
    corpus = checker.Corpus("toy", "toy-doc", root, BASE, min_questions=1, offcorpus=1, min_false_premise=1)
    return corpus, sets


def test_strings_on_the_gold_page_and_in_its_section_pass(tmp_path: Path) -> None:
    # "dpkg -S" is written with a no-break space on the page; a writer types a plain one.
    corpus, sets = _corpus(tmp_path, [_question("owner", ["dpkg -S", "file name pattern"])])
    assert checker.check_corpus(corpus, sets, pages_available=True) == []


@pytest.mark.parametrize(
    ("question", "problem"),
    [
        (_question("absent", ["dpkg --search"]), "'dpkg --search' is not in the extracted text"),
        # Script text is in the HTML but not in what citeline indexes.
        (_question("hidden", ["autoclean"], anchor=None), "'autoclean' is not in the extracted text"),
        (_question("wrong-section", ["/var/cache/apt/archives"]), "is on the page but not in section #_files"),
        (_question("no-anchor", ["dpkg"], anchor="_nowhere"), "no id '_nowhere'"),
        (_question("no-page", ["dpkg"], page="ch02.html"), "no page for"),
        (_question("escape", ["dpkg"], page="../secret.html"), "no page for"),
        ({**_question("off-site", ["dpkg"]), "gold_url": "https://elsewhere.example/ch01.html"}, "not under"),
        (_question("too-many", ["a", "b", "c", "d", "e"]), "1-4 non-empty strings"),
        ({**_question("one-part-list", ["dpkg"]), "list": True}, "needs every part"),
        ({**_question("typo", ["dpkg"]), "answer_contain": ["dpkg"]}, "fields"),
    ],
)
def test_each_mistake_in_a_question_is_reported(tmp_path: Path, question: dict[str, Any], problem: str) -> None:
    corpus, sets = _corpus(tmp_path, [question])
    errors = checker.check_corpus(corpus, sets, pages_available=True)
    assert any(problem in e for e in errors), errors


def test_duplicate_ids_and_bad_json_are_reported(tmp_path: Path) -> None:
    corpus, sets = _corpus(tmp_path, [_question("same", ["dpkg"]), _question("same", ["dpkg"])])
    with (sets / "toy_questions.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    errors = checker.check_corpus(corpus, sets, pages_available=True)
    assert any("duplicate ids ['toy/same']" in e for e in errors), errors
    assert any("invalid JSON" in e for e in errors), errors


def test_a_false_premise_correction_missing_from_its_section_is_reported(tmp_path: Path) -> None:
    corpus, sets = _corpus(tmp_path, [_question("owner", ["dpkg -S"])])
    path = sets / "toy_false_premise.jsonl"
    record = json.loads(path.read_text(encoding="utf-8"))
    _write(path, [{**record, "gold_anchor": "_files"}])
    errors = checker.check_corpus(corpus, sets, pages_available=True)
    assert any("premise/cache-forever" in e and "not in section #_files" in e for e in errors), errors


def test_without_the_corpus_page_checks_are_skipped_and_format_checks_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sets = _corpus(tmp_path, [_question("absent", ["dpkg --search"])])
    missing = checker.Corpus("toy", "toy-doc", tmp_path / "not-downloaded", BASE, 1, 1, 1)
    monkeypatch.setattr(checker, "CORPORA", {"toy": missing})
    assert checker.main(["--sets", str(sets)]) == 0
    assert "page checks skipped" in capsys.readouterr().out
    _write(sets / "toy_offcorpus.jsonl", [])
    assert checker.main(["--sets", str(sets)]) == 1


def test_the_committed_sets_pass() -> None:
    """Format checks always; page checks too where the corpus has been downloaded."""
    for corpus in checker.CORPORA.values():
        if not (REPO / "eval/sets" / f"{corpus.prefix}_questions.jsonl").exists():
            continue  # another corpus's sets, not committed in this checkout
        errors = checker.check_corpus(corpus, REPO / "eval/sets", pages_available=corpus.html_root.is_dir())
        assert errors == [], errors
