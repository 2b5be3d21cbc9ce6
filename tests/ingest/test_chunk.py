from __future__ import annotations

import itertools

import pytest

from citeline.ingest import ChunkSizes, chunk

TEXT = "\n".join(
    [
        "Reading files",
        "To read a file, open it with open() and call read(). " * 3,
        "Files are closed automatically by the with statement.",
        "Writing files",
        "Use write() to write a string. It returns the number of characters written.",
    ]
)


def test_passages_are_exact_spans_of_the_text() -> None:
    passages = chunk(TEXT, frozenset({"Reading files", "Writing files"}), ChunkSizes(20, 40, 5))
    assert passages
    for passage in passages:
        assert TEXT[passage.start : passage.end] == passage.text
    assert passages[0].heading == "Reading files"
    assert passages[-1].heading == "Writing files"
    assert passages[-1].text.startswith("Writing files")


def test_heading_starts_a_new_passage() -> None:
    passages = chunk(TEXT, frozenset({"Reading files", "Writing files"}), ChunkSizes(200, 300, 5))
    assert [p.heading for p in passages] == ["Reading files", "Writing files"]


@pytest.mark.parametrize("sizes", [ChunkSizes(10, 15, 3), ChunkSizes(50, 60, 10), ChunkSizes(120, 180, 25)])
def test_long_lines_are_split_under_the_cap(sizes: ChunkSizes) -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    long_line = sentence * 40 + " ".join(f"token{i}" for i in range(400))
    intro = "An introduction that is long enough to push the next line far from offset zero. " * 8
    text = f"{intro}\n{long_line}\nOutro."
    passages = chunk(text, frozenset(), sizes)
    covered = "".join(p.text for p in passages).replace(" ", "").replace("\n", "")
    assert covered == text.replace(" ", "").replace("\n", "")
    for passage in passages:
        assert text[passage.start : passage.end] == passage.text
        assert len(passage.text.split()) <= sizes.max_words + sizes.min_words
    prose = [p for p in passages if "fox" in p.text and "token" not in p.text]
    assert prose
    assert all(p.text.endswith("bank.") for p in prose), "long lines are cut at sentence ends"
    for before, after in itertools.pairwise(passages):
        assert before.start < before.end <= after.start, "passages are ordered and never overlap"


def test_empty_text_gives_no_passages() -> None:
    assert chunk("", frozenset()) == []
    assert chunk("\n\n  \n", frozenset()) == []
