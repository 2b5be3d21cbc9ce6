from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from citeline.indexes import HashEmbedder, PageRecord, PassageIndex, PassageRecord
from citeline.service.answering import Answerer
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.evaluation import (
    check_gate,
    evaluate,
    load_questions,
    lowered_without_reason,
    raise_floors,
)
from citeline.service.generation import ChatMessage, ScriptedGenerator

EMBEDDER = HashEmbedder(64)
PAGES = {
    "https://docs.example/copy.html": "The shutil module offers copyfile() to copy the contents of a file.",
    "https://docs.example/sort.html": "The list.sort() method sorts the list in place and returns None.",
}


def build_index(tmp_path: Path) -> PassageIndex:
    index = PassageIndex.create_or_open(tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=64)
    for url, text in PAGES.items():
        page = PageRecord(url=url, title=url.rsplit("/", 1)[-1], text=text, content_hash=url)
        index.upsert_page(page, [PassageRecord(0, len(text), text)], EMBEDDER.embed([text]))
    return index


def reply(messages: Sequence[ChatMessage]) -> str:
    if messages[0].content == JUDGE_SYSTEM:
        return "yes"
    question = messages[-1].content.rsplit("Question:", 1)[-1]
    sources = messages[-1].content
    if "copy" in question:
        number = 1 if sources.index("copyfile") < sources.index("sorts") else 2
        return f"The shutil module offers copyfile() to copy the contents of a file [{number}]."
    if "sort" in question:
        number = 1 if sources.index("sorts") < sources.index("copyfile") else 2
        return f"The list.sort() method sorts the list in place and returns None [{number}]."
    return "NOT FOUND"


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_evaluate_computes_retrieval_answer_citation_and_abstention_metrics(tmp_path: Path) -> None:
    index = build_index(tmp_path)
    questions = write(
        tmp_path / "q.jsonl",
        [
            {"id": "a", "question": "How do I copy a file?", "answerable": True, "gold_url": "https://docs.example/copy.html"},
            {"id": "b", "question": "Why does list.sort() return a new list?", "answerable": True,
             "gold_url": "https://docs.example/sort.html", "premise_correction": ["None", "in place"]},
            {"id": "c", "question": "What is the capital of Peru?", "answerable": False},
        ],
    )  # fmt: skip
    answers = write(tmp_path / "answers.jsonl", [{"id": "a", "answer_contains": ["copyfile"]}])
    answerer = Answerer(EMBEDDER, ScriptedGenerator(reply), top_k=2)
    report = evaluate("q", load_questions(questions, answers), index, EMBEDDER, answerer)
    totals = report.totals()
    assert totals["hit@5"] == 1.0
    assert totals["answer_accuracy"] == 1.0
    assert totals["gold_citation_rate"] == 1.0
    assert totals["abstention_accuracy"] == 1.0
    assert totals["false_abstention_rate"] == 0.0
    assert totals["false_premise_handled"] == 1.0
    assert totals["citation_recall"] == 1.0
    assert [q.id for q in load_questions(questions, every=2)] == ["a", "c"]
    assert [q.id for q in load_questions(questions, every=2, limit=1)] == ["a"]
    retrieval_only = evaluate("q", load_questions(questions), index, EMBEDDER, None).totals()
    assert retrieval_only["hit@5"] == 1.0
    assert retrieval_only["answer_accuracy"] is None


def test_a_list_question_is_complete_only_with_every_part(tmp_path: Path) -> None:
    index = build_index(tmp_path)
    gold = "https://docs.example/copy.html"
    questions = write(
        tmp_path / "q.jsonl",
        [
            {"id": "whole", "question": "How do I copy a file?", "gold_url": gold, "list": True,
             "answer_contains": ["shutil", "copyfile"]},
            {"id": "part", "question": "How do I copy a file?", "gold_url": gold, "list": True,
             "answer_contains": ["copyfile", "copytree"]},
            {"id": "single", "question": "How do I copy a file?", "gold_url": gold, "answer_contains": ["copytree"]},
        ],
    )  # fmt: skip
    answerer = Answerer(EMBEDDER, ScriptedGenerator(reply), top_k=2)
    report = evaluate("q", load_questions(questions), index, EMBEDDER, answerer)
    assert [(r.contains_answer, r.complete) for r in report.results] == [(True, True), (True, False), (False, None)]
    totals = report.totals()
    assert totals["completeness"] == 0.5, "measured over the list questions only"
    assert totals["answer_accuracy"] == round(2 / 3, 3)


def test_gate_fails_below_floor_and_on_missing_metrics() -> None:
    totals = {"faq": {"hit@5": 0.9, "false_abstention_rate": 0.2}}
    assert check_gate(totals, {"faq.hit@5": 0.85}) == []
    failures = check_gate(totals, {"faq.hit@5": 0.95, "faq.false_abstention_rate": 0.1, "faq.absent": 0.5})
    assert [f.metric for f in failures] == ["faq.absent", "faq.false_abstention_rate", "faq.hit@5"]
    assert "above the ceiling" in str(failures[1])


def test_floors_only_move_up_and_lowering_needs_a_reason() -> None:
    gate: dict[str, object] = {"floors": {"faq.hit@5": 0.8, "faq.false_abstention_rate": 0.3}, "history": []}
    changes = raise_floors(gate, {"faq": {"hit@5": 0.97, "false_abstention_rate": 0.1}})
    assert changes == {"faq.hit@5": 0.92, "faq.false_abstention_rate": 0.15}
    assert raise_floors(gate, {"faq": {"hit@5": 0.5, "false_abstention_rate": 0.9}}) == {}
    assert lowered_without_reason(gate) == []
    gate["floors"] = {"faq.hit@5": 0.7, "faq.false_abstention_rate": 0.15}  # type: ignore[index]
    assert lowered_without_reason(gate) == ["faq.hit@5: floor 0.7 is below its recorded 0.92 and no reason is given"]
    gate["history"].append({"change": "lowered", "floors": {"faq.hit@5": 0.7}, "reason": "new corpus"})  # type: ignore[attr-defined]
    assert lowered_without_reason(gate) == []


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[3] / "eval" / "gate").glob("gate.json")))
def test_committed_gate_was_never_lowered_silently(path: Path) -> None:
    gate = json.loads(path.read_text())
    assert gate["floors"], "the gate must pin floors"
    assert lowered_without_reason(gate) == []


def test_an_extract_counts_as_an_answer_and_is_reported_apart(tmp_path: Path) -> None:
    index = build_index(tmp_path)
    gold = "https://docs.example/copy.html"
    questions = write(
        tmp_path / "q.jsonl",
        [
            # The scripted generator declines this wording; the extract quotes the copy passage.
            {"id": "declined", "question": "Which shutil function copies the contents of a file?", "gold_url": gold,
             "answer_contains": ["copyfile"]},
            {"id": "answered", "question": "How do I copy a file?", "gold_url": gold, "answer_contains": ["copyfile"]},
        ],
    )  # fmt: skip

    def declines_shutil(messages: Sequence[ChatMessage]) -> str:
        return "NOT FOUND" if "shutil" in messages[-1].content.rsplit("Question:", 1)[-1] else reply(messages)

    report = evaluate(
        "q", load_questions(questions), index, EMBEDDER, Answerer(EMBEDDER, ScriptedGenerator(declines_shutil), top_k=2)
    )
    declined, answered = report.results
    assert (declined.extract, declined.abstained, declined.contains_answer, declined.cites_gold) == (
        True,
        False,
        True,
        True,
    )
    assert declined.sentences == [
        {"text": PAGES[gold], "supported": True, "quoted": True, "judged": False,
         "citations": [{"url": gold, "quote": PAGES[gold], "passage": PAGES[gold]}]}
    ]  # fmt: skip
    assert not answered.extract
    assert answered.sentences[0]["citations"][0]["passage"] == PAGES[gold]
    totals = report.totals()
    assert totals["extract_rate"] == 0.5
    assert totals["false_abstention_rate"] == 0.0
    assert totals["false_abstention_without_extract"] == 0.5, "what the rate would be without the fallback"
