from __future__ import annotations

from citeline.service.answering.scope import distinctive_terms

COMMON = frozenset(
    ["how", "do", "i", "a", "test", "with", "function", "invoke", "read", "the", "join", "lint", "python", "item"]
)


def test_code_names_and_rare_words_are_distinctive() -> None:
    assert distinctive_terms("How do I parametrize a test function with pytest?", COMMON) == ["parametrize", "pytest"]
    assert distinctive_terms("How do I use sync.WaitGroup?", COMMON) == ["waitgroup"]


def test_everyday_words_inflections_and_acronyms_are_not() -> None:
    assert distinctive_terms("How do I invoke the unreadable function?", COMMON) == []
    assert distinctive_terms("Why items.join and not SQL?", COMMON) == ["join"]
    assert distinctive_terms("Is PYTHON invoked by readers?", COMMON) == []


def test_without_a_vocabulary_only_code_names_count() -> None:
    assert distinctive_terms("How do I parametrize with json.loads?", frozenset()) == ["loads"]
