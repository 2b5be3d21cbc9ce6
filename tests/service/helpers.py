"""A small real index for service tests: one page, one passage per line, a fake embedder."""

from __future__ import annotations

from pathlib import Path

from citeline.indexes import Embedder, PageRecord, PassageIndex, PassageRecord


def one_page_index(data_dir: Path, embedder: Embedder, text: str, *, name: str = "docs",
                   url: str = "https://docs.example/json.html", title: str = "json") -> None:  # fmt: skip
    """Store ``text`` as one page whose lines are its passages, flushed and closed."""
    index = PassageIndex.create_or_open(
        data_dir, name, embedding_model=embedder.model_name, dimension=embedder.dimension
    )
    passages, start = [], 0
    for line in text.split("\n"):
        passages.append(PassageRecord(start, start + len(line), line))
        start += len(line) + 1
    page = PageRecord(url=url, title=title, text=text, content_hash="h")
    index.upsert_page(page, passages, embedder.embed([p.text for p in passages]))
    index.flush()
    index.close()
