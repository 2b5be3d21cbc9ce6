"""Repeated questions against an unchanged index are answered from the cache."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from citeline.indexes import HashEmbedder, PageRecord, PassageIndex, PassageRecord
from citeline.service.api import create_app
from citeline.service.api.cache import AnswerCache, cache_key
from citeline.service.generation import ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
TEXT = "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object."


def test_lru_keeps_the_most_recent_entries() -> None:
    cache = AnswerCache(max_entries=2)
    a, b, c = (cache_key("docs", 1, q) for q in ("a", "b", "c"))
    for key in (a, b, c):
        cache.put(key, object())  # type: ignore[arg-type] # any value will do for the LRU
    assert cache.get(a) is None
    assert cache.get(c) is not None
    assert len(cache) == 2
    assert cache_key("docs", 1, "  How do I READ json? ") == cache_key("docs", 1, "how do i read json?")
    assert cache_key("docs", 1, "q") != cache_key("docs", 2, "q"), "another index generation, another entry"
    off = AnswerCache(max_entries=0)
    off.put(a, object())  # type: ignore[arg-type]
    assert off.get(a) is None


def test_second_ask_is_cached_until_the_index_changes(tmp_path: Path) -> None:
    one_page_index(tmp_path, EMBEDDER, TEXT)
    generator = ScriptedGenerator("Use json.load() to read a JSON document [1].")
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=1), embedder=EMBEDDER, generator=generator)
    with TestClient(app) as client:
        first = client.post("/v1/ask", json={"question": "How do I read JSON?"}).json()
        calls = len(generator.calls)
        again = client.post("/v1/ask", json={"question": "how do I  read JSON?"}).json()
        assert (first["cached"], again["cached"]) == (False, True)
        assert again["answer"] == first["answer"]
        assert len(generator.calls) == calls, "no generation for a cached answer"
        flagged = client.post("/v1/ask", json={"question": "How do I read JSON?", "policy": "flag"}).json()
        assert flagged["cached"] is False, "other options, other answer"

        index = PassageIndex.create_or_open(tmp_path, "docs", embedding_model=EMBEDDER.model_name, dimension=64)
        other = "csv.writer(f) returns a writer object that converts data into delimited strings."
        page = PageRecord(url="https://docs.example/csv.html", title="csv", text=other, content_hash="c")
        index.upsert_page(page, [PassageRecord(0, len(other), other)], EMBEDDER.embed([other]))
        index.flush()
        index.close()
        after = client.post("/v1/ask", json={"question": "How do I read JSON?"}).json()
        assert after["cached"] is False, "a changed index is answered afresh"
