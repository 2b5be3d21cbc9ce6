"""``citeline eval``: retrieval, answer and citation quality on question sets, and the quality gate.

A question set is JSONL with ``id``, ``question``, ``answerable`` and, for answerable questions,
``gold_url`` (the page that answers it). An optional answers file adds ``answer_contains`` (strings
a correct answer must contain) by ``id``.

The gate (trafilatura style) compares the totals against pinned floors in a JSON file and fails
below any of them. Floors only move up on their own (``--raise-floors``); lowering one needs an
explicit reason, which is recorded in the file's ``history`` — never silently.
"""

from citeline.service.evaluation.gate import (
    LOWER_IS_BETTER,
    GateFailure,
    check_gate,
    gate_problems,
    lowered_without_reason,
    raise_floors,
)
from citeline.service.evaluation.run import EvalQuestion, EvalReport, QuestionResult, evaluate, load_questions

__all__ = [
    "LOWER_IS_BETTER",
    "EvalQuestion",
    "EvalReport",
    "GateFailure",
    "QuestionResult",
    "check_gate",
    "evaluate",
    "gate_problems",
    "load_questions",
    "lowered_without_reason",
    "raise_floors",
]
