from __future__ import annotations

import json
from pathlib import Path

import pytest

from citeline.indexes import HashEmbedder, LexicalIndex, PageRecord, PassageIndex, PassageRecord, tokenize
from citeline.indexes._lexical import CURRENT_FILE, LEXICAL_DIR

EMBEDDER = HashEmbedder(32)


def store(index: PassageIndex, url: str, text: str, title: str = "", heading: str = "") -> None:
    record = PageRecord(url=url, title=title or f"title of {url}", text=text, content_hash=str(hash(text)))
    passages = []
    start = 0
    for line in text.split("\n"):
        passages.append(PassageRecord(start=start, end=start + len(line), text=line, heading=heading))
        start += len(line) + 1
    index.upsert_page(record, passages, EMBEDDER.embed([p.text for p in passages]))


def new_index(tmp_path: Path) -> PassageIndex:
    return PassageIndex.create_or_open(
        tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=EMBEDDER.dimension
    )


def texts(index: PassageIndex, found: list[tuple[int, float]]) -> list[str]:
    return [hit.text for hit in index.passages_by_id([passage_id for passage_id, _ in found])]


@pytest.fixture
def docs(tmp_path: Path) -> PassageIndex:
    index = new_index(tmp_path)
    store(index, "https://d.example/os.path", "os.path.splitext splits the extension\nos.path.join joins paths")
    store(index, "https://d.example/json", "json.loads parses a document\njson.dumps serialises an object")
    store(index, "https://d.example/classes", "__init__ runs when an instance is made\nclasses bundle data")
    store(index, "https://d.example/views", "get_object_or_404 raises Http404\nHttpResponseRedirect sends a redirect")
    return index


def test_tokenize_keeps_dotted_names_and_identifiers_whole_and_split() -> None:
    assert tokenize("Use os.path.splitext() twice") == [
        "use",
        "os.path",
        "os.path.splitext",
        "path.splitext",
        "os",
        "path",
        "splitext",
        "twice",
    ]
    assert tokenize("__init__ and get_object_or_404") == [
        "__init__",
        "init",
        "get_object_or_404",
        "get",
        "object",
        "404",
    ]
    assert tokenize("HttpResponseRedirect") == ["httpresponseredirect", "http", "respons", "redirect"]


def test_tokenize_stems_and_drops_stop_words_and_single_letters() -> None:
    assert tokenize("How do I split the files?") == ["how", "do", "split", "file"]
    assert tokenize("the re module") == ["re", "modul"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("os.path.splitext", "os.path.splitext splits the extension"),
        ("how do I use splitext", "os.path.splitext splits the extension"),
        ("path.splitext", "os.path.splitext splits the extension"),
        ("json.loads", "json.loads parses a document"),
        ("what does __init__ do", "__init__ runs when an instance is made"),
        ("get_object_or_404", "get_object_or_404 raises Http404"),
        ("redirect response", "HttpResponseRedirect sends a redirect"),
    ],
)
def test_bm25_finds_exact_identifiers(docs: PassageIndex, query: str, expected: str) -> None:
    lexical = LexicalIndex.build(docs)
    found = lexical.search(query, 3)
    assert texts(docs, found)[0] == expected
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)


def test_page_title_and_heading_are_searchable(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    store(index, "https://d.example/a", "first line\nsecond line", title="Logging cookbook")
    store(index, "https://d.example/b", "third line", title="Other", heading="Sockets")
    lexical = LexicalIndex.build(index)
    assert len(lexical.search("cookbook", 5)) == 2
    assert texts(index, lexical.search("sockets", 5)) == ["third line"]


def test_a_query_of_unknown_or_stop_words_finds_nothing(docs: PassageIndex) -> None:
    lexical = LexicalIndex.build(docs)
    assert lexical.search("zebra quagga", 5) == []
    assert lexical.search("it is the", 5) == []
    assert lexical.search("", 5) == []
    assert lexical.search("json", 0) == []


def test_the_writer_persists_and_a_later_open_loads_it(docs: PassageIndex) -> None:
    built = LexicalIndex.open(docs, read_only=False)
    assert built.stats.source == "built"
    current = json.loads((docs.path / LEXICAL_DIR / CURRENT_FILE).read_text())
    assert current["generation"] == docs.generation()
    assert current["passages"] == len(built) == 8
    loaded = LexicalIndex.open(docs)
    assert loaded.stats.source == "loaded"
    assert loaded.search("json.loads", 8) == built.search("json.loads", 8)
    assert loaded.search("redirect", 8) == built.search("redirect", 8)


def test_a_page_change_makes_it_stale_and_the_writer_rebuilds(docs: PassageIndex) -> None:
    first = LexicalIndex.open(docs, read_only=False)
    store(docs, "https://d.example/json", "json.load reads a file\ntomllib parses TOML")
    assert first.is_stale(docs)
    assert LexicalIndex.load(docs) is None
    second = LexicalIndex.open(docs, read_only=False)
    assert second.stats.source == "built"
    assert not second.is_stale(docs)
    assert texts(docs, second.search("tomllib", 5)) == ["tomllib parses TOML"]
    assert second.search("serialises", 5) == []  # the old text is gone
    builds = [p for p in (docs.path / LEXICAL_DIR).iterdir() if p.is_dir()]
    assert [p.name for p in builds] == [json.loads((docs.path / LEXICAL_DIR / CURRENT_FILE).read_text())["dir"]]


def test_a_read_only_open_of_a_stale_build_builds_in_memory_and_writes_nothing(docs: PassageIndex) -> None:
    LexicalIndex.open(docs, read_only=False)
    store(docs, "https://d.example/new", "zipfile reads archives")
    before = sorted(p.name for p in (docs.path / LEXICAL_DIR).iterdir())
    current = (docs.path / LEXICAL_DIR / CURRENT_FILE).read_text()
    fresh = LexicalIndex.open(docs)
    assert fresh.stats.source == "memory"
    assert texts(docs, fresh.search("zipfile", 5)) == ["zipfile reads archives"]
    assert sorted(p.name for p in (docs.path / LEXICAL_DIR).iterdir()) == before
    assert (docs.path / LEXICAL_DIR / CURRENT_FILE).read_text() == current


def test_ids_stay_right_after_a_page_in_the_middle_is_removed(docs: PassageIndex) -> None:
    assert docs.remove_page("https://d.example/json")
    lexical = LexicalIndex.open(docs, read_only=False)
    assert lexical.search("json.loads", 5) == []
    reloaded = LexicalIndex.open(docs)
    assert reloaded.stats.source == "loaded"
    for text in ("os.path.join joins paths", "__init__ runs when an instance is made", "classes bundle data"):
        assert texts(docs, lexical.search(text, 1)) == [text]
        assert texts(docs, reloaded.search(text, 1)) == [text]


def test_an_empty_index_searches_to_nothing_and_round_trips(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    built = LexicalIndex.open(index, read_only=False)
    assert len(built) == 0
    assert built.search("anything", 5) == []
    loaded = LexicalIndex.open(index)
    assert loaded.stats.source == "loaded"
    assert loaded.search("anything", 5) == []


def test_unreadable_or_half_written_builds_are_rebuilt(docs: PassageIndex) -> None:
    LexicalIndex.open(docs, read_only=False)
    root = docs.path / LEXICAL_DIR
    (root / ".tmp-crashed").mkdir()  # a writer that died mid-build: never current, so never read
    (root / ".tmp-crashed" / "ids.npy").write_bytes(b"partial")
    assert LexicalIndex.open(docs).stats.source == "loaded"
    current = json.loads((root / CURRENT_FILE).read_text())
    (root / current["dir"] / "ids.npy").write_bytes(b"garbage")
    assert LexicalIndex.load(docs) is None
    (root / CURRENT_FILE).write_text("{not json")
    rebuilt = LexicalIndex.open(docs, read_only=False)
    assert rebuilt.stats.source == "built"
    assert LexicalIndex.open(docs).stats.source == "loaded"
    assert (root / ".tmp-crashed").is_dir()  # recent: it might be another writer's build in progress
