from __future__ import annotations

import pytest

from ingest import ChunkSizes, chunk

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
    text = f"Intro line here.\n{long_line}\nOutro."
    passages = chunk(text, frozenset(), sizes)
    covered = "".join(p.text for p in passages).replace(" ", "").replace("\n", "")
    assert covered == text.replace(" ", "").replace("\n", "")
    for passage in passages:
        assert text[passage.start : passage.end] == passage.text
        assert len(passage.text.split()) <= sizes.max_words + sizes.min_words


def test_empty_text_gives_no_passages() -> None:
    assert chunk("", frozenset()) == []
    assert chunk("\n\n  \n", frozenset()) == []
