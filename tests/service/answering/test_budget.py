from __future__ import annotations

from citeline.indexes import HashEmbedder, SearchHit
from citeline.service.answering.budget import GAP, BudgetConfig, excerpts
from citeline.service.answering.prompt import build_messages

EMBEDDER = HashEmbedder(64)

JSON_PASSAGE = (
    "The json module encodes and decodes JSON documents. It was added in Python 2.6.\n"
    "json.load(fp) deserializes fp, a text file holding a JSON document, to a Python object.\n"
    "Example:\n"
    "data = json.load(open('settings.json'))\n"
    "The module also offers json.dumps() for the reverse direction. Many other formats exist, such as"
    " TOML, YAML and INI files, each with its own module or package."
)
CSV_PASSAGE = (
    "The csv module reads and writes tabular data. A writer object is made with csv.writer(f).\n"
    "writer.writerow(row) writes one row to the file, formatted for the dialect.\n"
    "Dialects describe delimiters and quoting; the default dialect is excel, and many spreadsheets read it."
)


def hit(passage_id: int, text: str) -> SearchHit:
    return SearchHit(passage_id, 0.5, text, 0, len(text), "", f"https://docs.example/{passage_id}", "Page", passage_id)


def run(question: str, hits: list[SearchHit], max_chars: int) -> list[str]:
    vector = EMBEDDER.embed([question])[0]
    return excerpts(question, vector, hits, EMBEDDER, BudgetConfig(max_chars=max_chars))


def test_whole_passages_are_sent_when_they_fit_the_budget() -> None:
    hits = [hit(1, JSON_PASSAGE), hit(2, CSV_PASSAGE)]
    assert run("How do I load a JSON file?", hits, 10_000) == [JSON_PASSAGE, CSV_PASSAGE]
    assert run("How do I load a JSON file?", hits, 0) == [JSON_PASSAGE, CSV_PASSAGE]


def test_the_budget_keeps_the_relevant_sentences_of_every_passage() -> None:
    hits = [hit(1, JSON_PASSAGE), hit(2, CSV_PASSAGE)]
    shown = run("How does json.load deserialize a JSON document from a file?", hits, 220)
    assert len(shown) == 2
    assert sum(len(s) for s in shown) <= 220 + 4 * len(GAP)
    assert "json.load(fp) deserializes fp" in shown[0]
    assert "TOML, YAML" not in shown[0]
    # The second passage is still a source, with its best sentence only.
    assert shown[1].strip(" …")
    assert len(shown[1]) < len(CSV_PASSAGE)


def test_selected_sentences_are_verbatim_and_in_passage_order() -> None:
    hits = [hit(1, JSON_PASSAGE)]
    shown = run("json.load deserializes a text file; json.dumps goes the other way", hits, 200)[0]
    pieces = [p.strip(" …") for p in shown.split("…") if p.strip(" …")]
    positions = [JSON_PASSAGE.find(p) for p in pieces]
    assert all(p >= 0 for p in positions), pieces
    assert positions == sorted(positions)


def test_a_single_long_sentence_is_clipped_to_its_share() -> None:
    long_line = "word " * 400 + "json load"
    shown = run("json load", [hit(1, long_line.strip()), hit(2, CSV_PASSAGE)], 300)
    assert len(shown[0]) <= 300
    assert shown[0].endswith("…")


def test_prompt_shows_the_excerpts_under_the_passage_numbers() -> None:
    hits = [hit(1, JSON_PASSAGE), hit(2, CSV_PASSAGE)]
    messages = build_messages("q", hits, texts=["first excerpt", "second excerpt"])
    last = messages[-1].content
    assert "[1] Page\nfirst excerpt" in last
    assert "[2] Page\nsecond excerpt" in last
    assert JSON_PASSAGE[:40] not in last
