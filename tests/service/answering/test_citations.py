from __future__ import annotations

from urllib.parse import unquote

import pytest

from citeline.service.answering.citations import (
    best_span,
    content_tokens,
    fragment_url,
    parse_answer,
    passage_spans,
    renumber,
)


def test_parse_answer_keeps_valid_markers_and_drops_others() -> None:
    parsed = parse_answer("Use json.load() to read a file [1]. It returns a dict [2][7]. Done [0].", 3)
    assert [s.text for s in parsed] == ["Use json.load() to read a file.", "It returns a dict.", "Done."]
    assert [s.markers for s in parsed] == [[1], [2], []]
    assert parsed[1].invalid_markers == [7]
    assert parsed[2].invalid_markers == [0]


def test_marker_lists_leave_no_separators_behind() -> None:
    parsed = parse_answer("Python uses indentation for grouping statements [1], [2], and [3].", 3)
    assert parsed[0].text == "Python uses indentation for grouping statements."
    assert parsed[0].markers == [1, 2, 3]


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    parsed = parse_answer("Use json.load(). [1] It parses files. [2, 3]", 3)
    assert [s.markers for s in parsed] == [[1], [2, 3]]
    assert [s.text for s in parsed] == ["Use json.load().", "It parses files."]


def test_code_blocks_are_kept_whole() -> None:
    parsed = parse_answer("Read it like this [1]:\n```python\nwith open(p) as f:\n    data = json.load(f)\n```", 1)
    assert parsed[-1].is_code
    assert "json.load(f)" in parsed[-1].text


def test_passage_spans_have_offsets() -> None:
    text = "First line. Second sentence here.\nThird line"
    spans = passage_spans(text)
    assert [text[s.start : s.end] for s in spans] == ["First line.", "Second sentence here.", "Third line"]


def test_best_span_picks_the_supporting_sentence() -> None:
    passage = (
        "The json module encodes objects.\n"
        "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object.\n"
        "See also the pickle module."
    )
    span, coverage = best_span("Use json.load() to read a JSON document from a text file.", passage)
    assert span.text.startswith("json.load(fp) deserializes fp")
    assert passage[span.start : span.end] == span.text
    assert coverage > 0.5


def test_content_tokens_split_identifiers() -> None:
    assert {"json.load", "json", "load", "file"} <= content_tokens("Use json.load on the file")


@pytest.mark.parametrize(
    ("quote", "expected"),
    [
        ("Short quote, with-dash & more", "Short%20quote%2C%20with%2Ddash%20%26%20more"),
        (
            "one two three four five six seven eight nine ten eleven twelve",
            "one%20two%20three%20four%20five,eight%20nine%20ten%20eleven%20twelve",
        ),
        ("first line here\nsecond line", "first%20line%20here,second%20line"),
    ],
)
def test_fragment_url(quote: str, expected: str) -> None:
    url = fragment_url("https://docs.example/p.html#old", quote)
    assert url == f"https://docs.example/p.html#:~:text={expected}"
    for term in url.split("#:~:text=", 1)[1].split(","):
        assert unquote(term) in " ".join(quote.split())


def test_renumber() -> None:
    assert renumber([("A.", [1]), ("B.", [1, 2]), ("C.", [])]) == "A. [1] B. [1][2] C."
