"""The core :class:`PassageIndex` behaviours on both vector backends: FAISS and embedded Qdrant."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from citeline.indexes import (
    FaissVectorStore,
    HashEmbedder,
    PageRecord,
    PassageIndex,
    PassageRecord,
    VectorBackend,
    Vectors,
    VectorStoreBusyError,
)

EMBEDDER = HashEmbedder(32)
Opener = Callable[..., PassageIndex]


def store(index: PassageIndex, url: str, text: str) -> None:
    record = PageRecord(url=url, title=f"title of {url}", text=text, content_hash=str(hash(text)))
    passages, start = [], 0
    for line in text.split("\n"):
        passages.append(PassageRecord(start=start, end=start + len(line), text=line))
        start += len(line) + 1
    index.upsert_page(record, passages, EMBEDDER.embed([p.text for p in passages]))


def query(text: str) -> Vectors:
    vectors: Vectors = EMBEDDER.embed([text])
    return vectors[0:1]


def manifest_of(tmp_path: Path) -> dict[str, object]:
    return dict(json.loads((tmp_path / "indexes" / "docs" / "manifest.json").read_text()))


@pytest.fixture(params=["faiss", "qdrant"])
def backend(request: pytest.FixtureRequest) -> VectorBackend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def opener(tmp_path: Path, backend: VectorBackend) -> Iterator[Opener]:
    """Opens ``docs`` as a writer (default) or reader on ``backend``; everything opened is closed at the end."""
    opened: list[PassageIndex] = []

    def open_index(*, read_only: bool = False, vector_backend: VectorBackend = backend) -> PassageIndex:
        if read_only:
            index = PassageIndex.open(tmp_path, "docs", vector_backend=vector_backend)
        else:
            index = PassageIndex.create_or_open(
                tmp_path,
                "docs",
                embedding_model=EMBEDDER.model_name,
                dimension=EMBEDDER.dimension,
                vector_backend=vector_backend,
            )
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        index.close()


def test_search_finds_passages(opener: Opener) -> None:
    index = opener()
    store(index, "https://a.example/json", "json.load reads a file\njson.dumps writes a string")
    store(index, "https://a.example/csv", "csv.writer writes rows\ncsv.reader reads rows")
    hits = index.search(query("json.load reads a file"), k=2)
    assert hits[0].url == "https://a.example/json"
    assert hits[0].text == "json.load reads a file"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score > hits[1].score
    assert index.search(query("json"), k=0) == []


def test_replace_and_remove_pages_keep_vectors_in_step(opener: Opener) -> None:
    index = opener()
    store(index, "https://a.example/p", "one\ntwo\nthree")
    store(index, "https://a.example/p", "four\nfive")
    store(index, "https://a.example/old/q", "six\nseven")
    store(index, "https://a.example/old/r", "eight")
    assert index.vector_count == 5
    assert index.search(query("one"), k=5)[0].text != "one"
    assert index.remove_page("https://a.example/old/r")
    assert index.remove_pages("https://a.example/old/*") == ["https://a.example/old/q"]
    assert index.vector_count == 2
    assert {h.text for h in index.search(query("four"), k=5)} == {"four", "five"}
    assert index.check_integrity() == []


def test_flush_and_reopen_serve_the_saved_vectors(
    opener: Opener, backend: VectorBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = opener()
    store(index, "https://a.example/p", "alpha\nbeta")
    manifest = index.flush()
    assert manifest.vector_backend == backend
    assert manifest_of(tmp_path)["vector_backend"] == backend
    index.close()

    def no_rebuild(*_: object, **__: object) -> None:
        raise AssertionError("a flushed index must open without a rebuild")

    monkeypatch.setattr(FaissVectorStore, "rebuild", no_rebuild)
    monkeypatch.setattr(PassageIndex, "_rebuild_qdrant", no_rebuild)
    for read_only in (False, True):
        reopened = opener(read_only=read_only)
        assert reopened.vector_count == 2
        assert reopened.search(query("beta"), k=1)[0].text == "beta"
        assert reopened.check_integrity() == []
        reopened.close()


def test_changes_not_flushed_are_rebuilt_from_the_store(opener: Opener) -> None:
    """A crash between the store commit and the vector write must not lose or invent vectors."""
    index = opener()
    store(index, "https://a.example/p", "alpha\nbeta")
    index.flush()
    store(index, "https://a.example/q", "gamma\ndelta\nepsilon")  # committed, never flushed
    index.remove_page("https://a.example/p")
    index.close()
    for read_only in (True, False):  # a reader rebuilds in memory, a writer rebuilds its store
        reopened = opener(read_only=read_only)
        assert reopened.vector_count == 3
        assert reopened.check_integrity() == []
        assert reopened.search(query("gamma"), k=1)[0].text == "gamma"
        assert all(h.url == "https://a.example/q" for h in reopened.search(query("alpha"), k=5))
        reopened.close()


def test_opening_with_the_other_backend_rebuilds_into_it(
    opener: Opener, backend: VectorBackend, tmp_path: Path
) -> None:
    other: VectorBackend = "qdrant" if backend == "faiss" else "faiss"
    index = opener()
    store(index, "https://a.example/p", "alpha\nbeta\ngamma")
    index.flush()
    index.close()
    switched = opener(vector_backend=other)
    assert switched.vector_count == 3
    assert switched.search(query("gamma"), k=1)[0].text == "gamma"
    assert switched.flush().vector_backend == other
    assert manifest_of(tmp_path)["vector_backend"] == other
    assert switched.check_integrity() == []


@pytest.mark.parametrize("backend", ["qdrant"])  # only embedded Qdrant locks its folder
def test_embedded_qdrant_held_by_another_client_is_a_clear_error(opener: Opener) -> None:
    writer = opener()
    store(writer, "https://a.example/p", "alpha")
    writer.flush()
    with pytest.raises(VectorStoreBusyError, match="Qdrant server"):
        opener(read_only=True)


class SharedQdrant:
    """Stands in for one Qdrant server: every client given a ``url`` talks to the same in-memory
    instance (the same client API a server answers), and closing a client leaves it running."""

    def __init__(self) -> None:
        import qdrant_client

        self._real = qdrant_client.QdrantClient
        self.server = self._real(location=":memory:")

    def __call__(self, *args: Any, url: str | None = None, **kwargs: Any) -> object:
        if url is None:
            return self._real(*args, **kwargs)
        return _ServerClient(self.server)

    def collections(self) -> set[str]:
        return {c.name for c in self.server.get_collections().collections}


class _ServerClient:
    def __init__(self, server: object) -> None:
        self._server = server

    def __getattr__(self, name: str) -> object:
        return getattr(self._server, name)

    def close(self, **_kwargs: object) -> None:
        """The server outlives its clients."""


@pytest.fixture
def qdrant_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedQdrant]:
    import qdrant_client

    shared = SharedQdrant()
    monkeypatch.setattr(qdrant_client, "QdrantClient", shared)
    yield shared
    shared.server.close()


def on_server(data_dir: Path, *, read_only: bool = False) -> PassageIndex:
    if read_only:
        return PassageIndex.open(data_dir, "docs", vector_backend="qdrant", qdrant_url="http://qdrant.test:6333")
    return PassageIndex.create_or_open(
        data_dir,
        "docs",
        embedding_model=EMBEDDER.model_name,
        dimension=EMBEDDER.dimension,
        vector_backend="qdrant",
        qdrant_url="http://qdrant.test:6333",
    )


# Local mode (what stands in for the server here) warns that it ignores payload indexes.
@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
def test_two_data_dirs_share_a_qdrant_server_without_sharing_collections(
    tmp_path: Path, qdrant_server: SharedQdrant
) -> None:
    first, second = on_server(tmp_path / "a"), on_server(tmp_path / "b")
    try:
        store(first, "https://a.example/json", "json.load reads a file\njson.dumps writes a string")
        store(second, "https://b.example/csv", "csv.writer writes rows")
        first.flush()
        second.flush()
        assert len(qdrant_server.collections()) == 2
        assert [h.url for h in first.search(query("csv.writer writes rows"), k=5)] == ["https://a.example/json"] * 2
        assert [h.url for h in second.search(query("json.load reads a file"), k=5)] == ["https://b.example/csv"]
    finally:
        first.close()
        second.close()
    # The first index's collection falls behind its store (a crash before the flush, say): its
    # writer rebuilds it, and the second index's collection must come through untouched.
    (tmp_path / "a" / "indexes" / "docs" / "manifest.json").unlink()
    rebuilt = on_server(tmp_path / "a")
    rebuilt.close()
    assert sorted(qdrant_server.server.count(name).count for name in qdrant_server.collections()) == [1, 2]
    reader = on_server(tmp_path / "b", read_only=True)
    try:
        assert reader.vector_count == 1
        assert reader.search(query("csv.writer writes rows"), k=1)[0].url == "https://b.example/csv"
    finally:
        reader.close()


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
def test_a_copied_data_dir_gets_a_collection_of_its_own(tmp_path: Path, qdrant_server: SharedQdrant) -> None:
    original = on_server(tmp_path / "a")
    store(original, "https://a.example/p", "alpha beta")
    original.flush()
    original.close()
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    copy = on_server(tmp_path / "copy")
    try:
        store(copy, "https://a.example/q", "gamma delta")
        copy.flush()
    finally:
        copy.close()
    assert len(qdrant_server.collections()) == 2
    reader = on_server(tmp_path / "a", read_only=True)
    try:
        assert reader.page_urls() == ["https://a.example/p"]
        assert reader.vector_count == 1
    finally:
        reader.close()


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
def test_rebuilding_an_index_named_before_unique_names_leaves_the_old_collection(
    tmp_path: Path, qdrant_server: SharedQdrant
) -> None:
    """``docs`` on a shared server may be another data directory's index: a rebuild must move
    this one to a name of its own instead of dropping it."""
    from qdrant_client import models

    qdrant_server.server.create_collection(
        "docs", vectors_config=models.VectorParams(size=EMBEDDER.dimension, distance=models.Distance.COSINE)
    )
    qdrant_server.server.upsert("docs", points=[models.PointStruct(id=1, vector=query("theirs")[0].tolist())])
    fixture = Path(__file__).parent.parent / "data" / "indexes" / "schema3-qdrant"
    shutil.copytree(fixture, tmp_path / "data")  # its manifest records Qdrant under the old name
    index = on_server(tmp_path / "data")  # "docs" holds 1 vector, the store 6: it is rebuilt
    try:
        assert index.vector_count == 6
        assert index.search(query("zlib.compress shrinks bytes"), k=1)[0].url == "https://docs.example/old/zlib.html"
    finally:
        index.close()
    assert qdrant_server.server.count("docs").count == 1
    assert len(qdrant_server.collections()) == 2
