"""``citeline eval``: retrieval, answer and citation quality on question sets, and the quality gate.

A question set is JSONL with ``id``, ``question``, ``answerable`` and, for answerable questions,
``gold_url`` (the page that answers it). An optional answers file adds ``answer_contains`` (strings
a correct answer must contain) by ``id``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from citeline.indexes import Embedder, PassageIndex
from citeline.service.answering import Answerer, Policy, Retriever


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    id: str
    question: str
    answerable: bool
    gold_url: str | None = None
    answer_contains: tuple[str, ...] = ()
    premise_correction: tuple[str, ...] = ()
    """For a false-premise question: strings of which one shows the answer corrects the premise."""
    is_list: bool = False
    """A question with several parts ("what are the three ..."): ``answer_contains`` names every
    part, and the answer is complete only when it holds them all."""


@dataclass(slots=True)
class QuestionResult:
    id: str
    question: str
    answerable: bool
    gold_rank: int | None
    """1-based rank of the first retrieved passage from the gold page (None: not in the top 5)."""
    top_score: float | None = None
    """Similarity of the best retrieved passage: how close the corpus came to the question."""
    abstained: bool | None = None
    answer: str = ""
    cites_gold: bool | None = None
    contains_answer: bool | None = None
    complete: bool | None = None
    """List question: the answer holds every part (every ``answer_contains`` string)."""
    premise_handled: bool | None = None
    """False-premise question: abstained, or answered with the correction (never accepted it)."""
    citation_recall: float | None = None
    citation_precision: float | None = None
    final_citation_recall: float | None = None
    final_citation_precision: float | None = None
    total_ms: float = 0.0
    generate_ms: float = 0.0
    verify_ms: float = 0.0
    ttft_ms: float = 0.0
    first_verified_ms: float | None = None
    """Time to the first sentence shown as verified (None: the answer abstained)."""
    prompt_tokens: int = 0
    judge_calls: int = 0
    unknown_terms: list[str] = field(default_factory=list)
    """Question terms the index never mentions (the answer abstained before generating)."""
    extract: bool = False
    """The generator declined and the answer quotes the sources instead (it would have abstained)."""
    sentences: list[dict[str, Any]] = field(default_factory=list)
    """Each answer sentence with its verdict and, per citation, the quote and the whole passage it
    was checked against: what a reader labels to measure the checker on real answers."""


@dataclass(slots=True)
class EvalReport:
    name: str
    index: str
    results: list[QuestionResult] = field(default_factory=list)

    def totals(self) -> dict[str, float | None]:
        answerable = [r for r in self.results if r.answerable]
        unanswerable = [r for r in self.results if not r.answerable]
        answered = [r for r in self.results if r.abstained is not None]
        given = [r for r in answered if r.answerable and r.abstained is False]

        def share(items: Sequence[QuestionResult], test: Callable[[QuestionResult], bool]) -> float | None:
            return round(sum(1 for r in items if test(r)) / len(items), 3) if items else None

        def mean(values: Iterable[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return round(statistics.fmean(present), 3) if present else None

        def p50(values: Iterable[float]) -> float | None:
            present = [v for v in values if v]
            return round(statistics.median(present), 1) if present else None

        answered_answerable = [r for r in answered if r.answerable]
        with_gold_strings = [r for r in answered_answerable if r.contains_answer is not None]
        return {
            "questions": float(len(self.results)),
            "hit@1": share(answerable, lambda r: r.gold_rank == 1),
            "hit@5": share(answerable, lambda r: r.gold_rank is not None),
            "answer_accuracy": share(with_gold_strings, lambda r: bool(r.contains_answer)),
            "completeness": share(
                [r for r in answered_answerable if r.complete is not None], lambda r: bool(r.complete)
            ),
            "gold_citation_rate": share(answered_answerable, lambda r: bool(r.cites_gold)),
            "citation_recall": mean(r.citation_recall for r in given),
            "citation_precision": mean(r.citation_precision for r in given),
            "final_citation_recall": mean(r.final_citation_recall for r in given),
            "final_citation_precision": mean(r.final_citation_precision for r in given),
            "abstention_accuracy": share([r for r in answered if not r.answerable], lambda r: bool(r.abstained))
            if unanswerable
            else None,
            "false_abstention_rate": share(
                [r for r in answered_answerable if r.premise_handled is None], lambda r: bool(r.abstained)
            ),
            "extract_rate": share(answered_answerable, lambda r: r.extract),
            "false_abstention_without_extract": share(
                [r for r in answered_answerable if r.premise_handled is None], lambda r: bool(r.abstained or r.extract)
            ),
            "false_premise_handled": share(
                [r for r in answered if r.premise_handled is not None], lambda r: bool(r.premise_handled)
            ),
            "p50_total_ms": p50(r.total_ms for r in answered),
            "p95_total_ms": round(sorted(r.total_ms for r in answered)[int(0.95 * (len(answered) - 1))], 1)
            if answered
            else None,
            "p50_generate_ms": p50(r.generate_ms for r in answered),
            "p50_verify_ms": p50(r.verify_ms for r in answered),
            "p50_ttft_ms": p50(r.ttft_ms for r in answered),
            "p50_first_verified_sentence_ms": p50(r.first_verified_ms or 0.0 for r in answered),
            "p50_prompt_tokens": p50(float(r.prompt_tokens) for r in answered),
            "judge_calls_per_answer": mean(float(r.judge_calls) for r in answered),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "totals": self.totals(),
            "results": [asdict(r) for r in self.results],
        }


def load_questions(
    path: Path, answers: Path | None = None, limit: int | None = None, every: int = 1
) -> list[EvalQuestion]:
    """Read a set; ``every`` keeps every Nth question (an even sample over all pages), ``limit``
    then keeps the first N of those."""
    extra: dict[str, tuple[str, ...]] = {}
    if answers is not None:
        for line in answers.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                extra[row["id"]] = tuple(row["answer_contains"])
    questions = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        questions.append(
            EvalQuestion(
                id=row["id"],
                question=row["question"],
                answerable=bool(row.get("answerable", True)),
                gold_url=row.get("gold_url"),
                answer_contains=extra.get(row["id"], tuple(row.get("answer_contains", ()))),
                premise_correction=tuple(row.get("premise_correction", ())),
                is_list=bool(row.get("list", False)),
            )
        )
    questions = questions[:: max(1, every)]
    return questions[:limit] if limit else questions


def _same_page(url: str, gold: str) -> bool:
    return url.split("#", 1)[0].rstrip("/") == gold.split("#", 1)[0].rstrip("/")


def evaluate(
    name: str,
    questions: Sequence[EvalQuestion],
    index: PassageIndex,
    embedder: Embedder,
    answerer: Answerer | None,
    *,
    progress: Callable[[int], None] | None = None,
    retriever: Retriever | None = None,
    policy: Policy = "strict",
) -> EvalReport:
    """Retrieval metrics for every question; answer metrics too when an ``answerer`` is given.

    Retrieval is measured with the answerer's retriever (else ``retriever``, else dense search), so
    hit@5 describes the passages answers are written from."""
    report = EvalReport(name=name, index=index.name)
    retriever = answerer.retriever if answerer is not None else retriever or Retriever(embedder)
    for done, item in enumerate(questions, start=1):
        hits = retriever.search(index, item.question, 5)
        rank = None
        if item.gold_url:
            rank = next((i for i, h in enumerate(hits, start=1) if _same_page(h.url, item.gold_url)), None)
        result = QuestionResult(
            item.id, item.question, item.answerable, rank, round(hits[0].score, 4) if hits else None
        )
        if answerer is not None:
            started = time.perf_counter()
            answer = answerer.answer(item.question, index, policy=policy)
            result.total_ms = round((time.perf_counter() - started) * 1000, 1)
            result.abstained = answer.abstained
            result.answer = answer.answer
            result.generate_ms = answer.timings.generate_ms
            result.verify_ms = answer.timings.verify_ms
            result.ttft_ms = answer.timings.time_to_first_token_ms
            result.first_verified_ms = answer.timings.first_verified_sentence_ms
            result.prompt_tokens = answer.usage.prompt_tokens
            result.judge_calls = answer.usage.judge_calls
            result.unknown_terms = answer.unknown_terms
            result.extract = answer.extract
            passages = {p.passage_id: p.text for p in answer.retrieved}
            citations = {c.id: c for c in answer.citations}
            result.sentences = [
                {
                    "text": sentence.text,
                    "supported": sentence.supported,
                    "quoted": sentence.quoted,
                    "judged": sentence.judged,
                    "citations": [
                        {
                            "url": citations[n].url,
                            "quote": citations[n].quote,
                            "passage": passages.get(citations[n].passage_id, ""),
                        }
                        for n in sentence.citations
                        if n in citations
                    ],
                }
                for sentence in answer.sentences
            ]
            if item.gold_url:
                result.cites_gold = any(_same_page(c.url, item.gold_url) for c in answer.citations)
            lowered = answer.answer.lower()
            if item.answer_contains:
                found = [s.lower() in lowered for s in item.answer_contains]
                result.contains_answer = any(found)
                if item.is_list:
                    result.complete = all(found)
            if item.premise_correction:
                corrected = any(s.lower() in lowered for s in item.premise_correction)
                result.premise_handled = answer.abstained or corrected
            if not answer.abstained:
                result.citation_recall = answer.generator_citation_recall
                result.citation_precision = answer.generator_citation_precision
                result.final_citation_recall = answer.citation_recall
                result.final_citation_precision = answer.citation_precision
        report.results.append(result)
        if progress:
            progress(done)
    return report
