from __future__ import annotations

from collections.abc import Sequence

import pytest

from indexes import HashEmbedder
from service.generation import ChatMessage, ScriptedGenerator
from service.verify import (
    JUDGE_SYSTEM,
    Verifier,
    VerifierConfig,
    VerifierStats,
    judge_messages,
    parse_judgement,
    score_pair,
)

PASSAGE = (
    "The default recursion limit is 1000.\n"
    "sys.setrecursionlimit(limit) sets the maximum depth of the Python interpreter stack to limit.\n"
    "The highest possible limit is platform-dependent."
)
CONFIG = VerifierConfig()


def test_paraphrase_with_same_facts_scores_high() -> None:
    evidence = score_pair(
        "sys.setrecursionlimit() sets the maximum depth of the interpreter stack.", PASSAGE, 0.8, CONFIG
    )
    assert evidence.verdict == "supported"
    assert evidence.span.text.startswith("sys.setrecursionlimit(limit)")


def test_changed_number_is_unsupported() -> None:
    evidence = score_pair("The default recursion limit is 100.", PASSAGE, 0.95, CONFIG)
    assert evidence.missing_numbers == ("100",)
    assert evidence.verdict == "unsupported"


def test_number_words_match_digits() -> None:
    evidence = score_pair("The function takes two arguments.", "The function takes 2 arguments.", 0.9, CONFIG)
    assert evidence.missing_numbers == ()
    assert score_pair("It takes three arguments.", "It takes 2 arguments.", 0.9, CONFIG).missing_numbers == ("3",)


def test_swapped_name_is_unsupported() -> None:
    evidence = score_pair(
        "sys.getrecursionlimit() sets the maximum depth of the interpreter stack.", PASSAGE, 0.9, CONFIG
    )
    assert evidence.missing_names == ("sys.getrecursionlimit",)
    assert evidence.verdict == "unsupported"


def test_negation_on_one_side_only_is_never_supported_by_cheap_evidence() -> None:
    evidence = score_pair("The highest possible limit is not platform-dependent.", PASSAGE, 0.95, CONFIG)
    assert evidence.negation_mismatch
    assert evidence.verdict != "supported"


def test_judge_prompt_and_parse() -> None:
    messages = judge_messages([("claim one", "passage one"), ("claim two", "passage two")])
    assert messages[0].content == JUDGE_SYSTEM
    assert "Passage 2: passage two\nClaim 2: claim two" in messages[1].content
    assert parse_judgement("1: yes\n2: No", 2) == [True, False]
    assert parse_judgement("1) YES", 3) == [True, False, False], "skipped claims are not supported"
    assert parse_judgement("9: yes", 1) == [False]


@pytest.mark.parametrize(("verdict", "expected"), [("yes", "supported"), ("no", "unsupported")])
def test_unsure_pairs_go_to_the_judge_in_one_batch(verdict: str, expected: str) -> None:
    def judge(messages: Sequence[ChatMessage]) -> str:
        count = messages[-1].content.count("Claim ")
        return "\n".join(f"{i}: {verdict}" for i in range(1, count + 1))

    generator = ScriptedGenerator(judge)
    verifier = Verifier(HashEmbedder(64), generator, VerifierConfig(supported_at=1.01, unsupported_below=0.0))
    stats = VerifierStats()
    evidence = verifier.check([("The default recursion limit is 1000.", PASSAGE)] * 3, stats)
    assert [e.verdict for e in evidence] == [expected] * 3
    assert all(e.judged for e in evidence)
    assert (stats.judge_calls, stats.judged, len(generator.calls)) == (1, 3, 1)


def test_judge_budget_and_no_judge() -> None:
    generator = ScriptedGenerator("1: yes\n2: yes")
    config = VerifierConfig(supported_at=1.01, unsupported_below=0.0, max_judged_pairs=2)
    evidence = Verifier(HashEmbedder(64), generator, config).check([("limit is 1000", PASSAGE)] * 3)
    assert [e.verdict for e in evidence] == ["supported", "supported", "unsupported"]
    no_judge = Verifier(HashEmbedder(64), None, config).check([("limit is 1000", PASSAGE)])
    assert no_judge[0].verdict == "unsupported", "unsure and unconfirmed is not support"
