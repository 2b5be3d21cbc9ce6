from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from citeline.indexes import HashEmbedder, PassageIndex, Vectors
from citeline.ingest import IngestInputs, IngestOptions, IngestSettings, IngestSummary, UrlMap, run_ingest
from citeline.ingest.fetch import FetchedPage
from citeline.ingest.journal import JOURNAL_FILE
from citeline.ingest.warc import warc_pages
from tests.leaks import open_descriptors

BODY = "<p>{0} is described here in enough words to pass the extractor's minimum length check.</p>"
SITE = {
    "/docs/index.html": "<html><head><title>Index</title></head><body><h1>Index</h1>"
    + BODY.format("The index")
    + '<a href="json.html">json</a> <a href="broken.html">broken</a> <a href="empty.html">empty</a></body></html>',
    "/docs/json.html": "<html><head><title>JSON</title></head><body><h1>JSON</h1>"
    + BODY.format("json.load reads a JSON document from a file and")
    + "</body></html>",
    "/docs/empty.html": "<html><body></body></html>",
}


def make_transport(site: dict[str, str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in site:
            return httpx.Response(200, html=site[request.url.path])
        return httpx.Response(404, html="nope")

    return httpx.MockTransport(handler)


async def ingest(tmp_path: Path, site: dict[str, str], **options: Any) -> IngestSummary:
    settings = IngestSettings(data_dir=tmp_path, index="t", per_host_delay=0)
    return await run_ingest(
        ["http://mirror.test/docs/index.html"],
        settings=settings,
        embedder=HashEmbedder(32),
        transport=make_transport(site),
        options=IngestOptions(**options),
    )


async def test_ingest_indexes_pages_and_reports_failures(tmp_path: Path) -> None:
    summary = await ingest(tmp_path, SITE, url_map=UrlMap.parse(["http://mirror.test/docs/=https://public.example/"]))
    assert summary.pages_fetched == 3
    assert summary.pages_indexed == 2
    failures = {f.url: (f.stage, f.reason) for f in summary.failures}
    assert failures == {
        "http://mirror.test/docs/broken.html": ("fetch", "HTTP 404"),
        "http://mirror.test/docs/empty.html": ("extract", "no main text found"),
    }
    index = PassageIndex.open(tmp_path, "t")
    assert sorted(index.page_urls()) == ["https://public.example/index.html", "https://public.example/json.html"]
    page = index.page("https://public.example/json.html")
    assert page is not None
    assert page.fetched_url == "http://mirror.test/docs/json.html"
    assert index.check_integrity() == []
    assert summary.to_json()["pages_failed"] == 2


async def test_reingest_is_idempotent_and_updates_changed_pages(tmp_path: Path) -> None:
    first = await ingest(tmp_path, SITE)
    second = await ingest(tmp_path, SITE)
    assert second.pages_unchanged == first.pages_indexed == 2
    assert second.pages_indexed == 0
    assert second.index_passages == first.index_passages
    changed = dict(SITE)
    changed["/docs/json.html"] = changed["/docs/json.html"].replace("reads", "parses")
    third = await ingest(tmp_path, changed)
    assert (third.pages_indexed, third.pages_unchanged) == (1, 1)
    index = PassageIndex.open(tmp_path, "t")
    assert third.index_passages == first.index_passages
    assert index.check_integrity() == []
    page = index.page("http://mirror.test/docs/json.html")
    assert page is not None
    assert "parses" in page.text


async def test_dead_seed_does_not_stop_the_run(tmp_path: Path) -> None:
    settings = IngestSettings(data_dir=tmp_path, index="t", connect_timeout=0.5)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "dead.test":
            raise httpx.ConnectError("refused", request=request)
        return make_transport(SITE).handle_request(request)

    summary = await run_ingest(
        ["http://dead.test/", "http://mirror.test/docs/json.html"],
        settings=settings,
        embedder=HashEmbedder(32),
        options=IngestOptions(max_depth=0),
        transport=httpx.MockTransport(handler),
    )
    assert summary.pages_indexed == 1
    assert [f.url for f in summary.failures] == ["http://dead.test/"]


async def test_new_chunking_rules_recut_unchanged_pages(tmp_path: Path) -> None:
    await ingest(tmp_path, SITE)
    settings = IngestSettings(data_dir=tmp_path, index="t", passage_words=60, passage_max_words=90)
    again = await run_ingest(
        ["http://mirror.test/docs/index.html"],
        settings=settings,
        embedder=HashEmbedder(32),
        transport=make_transport(SITE),
    )
    assert (again.pages_indexed, again.pages_unchanged) == (2, 0)
    assert PassageIndex.open(tmp_path, "t").check_integrity() == []


class DyingEmbedder(HashEmbedder):
    """Embeds ``lives`` batches, then fails the way a model that ran out of memory would."""

    def __init__(self, lives: int) -> None:
        super().__init__(32)
        self.lives = lives

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        if self.lives <= 0:
            raise RuntimeError("the embedder died")
        self.lives -= 1
        return super().embed(texts, batch_size=batch_size)


async def test_a_run_that_fails_to_start_closes_the_index_and_the_journal(tmp_path: Path) -> None:
    """An unwritable WARC path fails after the index and the journal are open: both must be
    closed, or the embedded Qdrant folder stays locked against every later open."""
    settings = IngestSettings(data_dir=tmp_path, index="t", per_host_delay=0, vector_backend="qdrant")
    with pytest.raises(FileNotFoundError) as failed:  # kept alive: the traceback must not hold them open
        await run_ingest(
            ["http://mirror.test/docs/index.html"],
            settings=settings,
            embedder=HashEmbedder(32),
            transport=make_transport(SITE),
            options=IngestOptions(record_warc=tmp_path / "no-such-folder" / "crawl.warc"),
        )
    index_dir = tmp_path / "indexes" / "t"
    assert open_descriptors(index_dir / "passages.sqlite") == 0
    assert open_descriptors(index_dir / "crawl_journal.sqlite") == 0
    PassageIndex.open(tmp_path, "t", read_only=False, vector_backend="qdrant").close()
    del failed


async def test_a_corrupt_crawl_journal_is_refused_and_left_closed(tmp_path: Path) -> None:
    """A journal that is no SQLite database fails on its first PRAGMA, inside ``CrawlJournal``'s
    constructor: no caller ever holds the connection to close it, so the constructor must."""
    await ingest(tmp_path, SITE)
    journal = tmp_path / "indexes" / "t" / JOURNAL_FILE
    for leftover in journal.parent.glob(f"{JOURNAL_FILE}-*"):
        leftover.unlink()
    journal.write_bytes(b"this is not a SQLite database\n" * 200)
    with pytest.raises(sqlite3.DatabaseError) as refused:  # kept alive: its traceback holds the journal
        await ingest(tmp_path, SITE)
    assert open_descriptors(journal) == 0
    assert open_descriptors(tmp_path / "indexes" / "t" / "passages.sqlite") == 0
    del refused


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
async def test_a_warc_whose_first_record_cannot_be_written_is_closed(tmp_path: Path) -> None:
    """``/dev/full`` opens but refuses every write: the warcinfo record fails inside ``__enter__``,
    where no ``__exit__`` will close the file."""
    full = Path("/dev/full")
    with pytest.raises(OSError, match="No space left") as failed:
        await ingest(tmp_path, SITE, record_warc=full)
    assert open_descriptors(full) == 0
    assert open_descriptors(tmp_path / "indexes" / "t" / "passages.sqlite") == 0
    del failed


async def test_a_failed_crawl_leaves_its_warc_closed_and_readable(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    settings = IngestSettings(data_dir=tmp_path, index="t", per_host_delay=0, embed_batch_passages=1)
    with pytest.raises(RuntimeError, match="embedder died") as failed:
        await run_ingest(
            ["http://mirror.test/docs/index.html"],
            settings=settings,
            embedder=DyingEmbedder(lives=1),
            transport=make_transport(SITE),
            options=IngestOptions(record_warc=warc),
        )
    assert open_descriptors(warc) == 0
    assert open_descriptors(tmp_path / "indexes" / "t" / "passages.sqlite") == 0
    recorded = list(warc_pages(warc, max_pages=10))
    assert all(isinstance(item, FetchedPage) for item in recorded)
    assert "http://mirror.test/docs/index.html" in {item.url for item in recorded}
    del failed


async def test_a_failed_ingest_closes_the_warc_it_reads(tmp_path: Path) -> None:
    warc = tmp_path / "site.warc"
    await ingest(tmp_path, SITE, record_warc=warc)
    settings = IngestSettings(data_dir=tmp_path, index="from-warc", embed_batch_passages=1)
    with pytest.raises(RuntimeError, match="embedder died") as failed:
        await run_ingest(settings=settings, embedder=DyingEmbedder(lives=0), inputs=IngestInputs(warcs=(warc,)))
    assert open_descriptors(warc) == 0
    del failed


# --------------------------------------------------------------------------- what a page cap leaves out


async def test_a_directory_is_not_capped_by_the_crawl_default_and_a_cap_asked_for_says_what_it_left(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for n in range(5):
        (site / f"page{n}.html").write_text(f"<html><body>{BODY.format(f'Topic {n}')}</body></html>")
    settings = IngestSettings(data_dir=tmp_path / "data", index="t", max_pages=3)
    inputs = IngestInputs(directory=site, base_url="https://docs.example/")
    whole = await run_ingest(
        settings=settings, embedder=HashEmbedder(32), inputs=inputs, options=IngestOptions(index_name="whole")
    )
    assert whole.pages_new == 5, "the crawl default (max_pages=3) does not cap a directory"
    assert (whole.page_cap, whole.left_by_cap) == (None, {})
    capped = await run_ingest(
        settings=settings,
        embedder=HashEmbedder(32),
        inputs=inputs,
        options=IngestOptions(index_name="capped", max_pages=2),
    )
    assert capped.pages_new == 2
    assert (capped.page_cap, capped.left_by_cap) == (2, {"files": 3})
    assert capped.to_json()["left_by_cap"] == {"files": 3}


async def test_a_crawl_stopped_by_its_cap_says_how_many_urls_it_left(tmp_path: Path) -> None:
    site = {"/docs/index.html": "<html><body>" + BODY.format("The index")
            + "".join(f'<a href="p{n}.html">{n}</a>' for n in range(6)) + "</body></html>"}  # fmt: skip
    site.update({f"/docs/p{n}.html": f"<html><body>{BODY.format(f'Page {n}')}</body></html>" for n in range(6)})
    summary = await ingest(tmp_path, site, max_pages=3)
    assert summary.pages_fetched == 3
    assert (summary.page_cap, summary.left_by_cap) == (3, {"urls": 4})
    everything = await ingest(tmp_path / "again", site, max_pages=50)
    assert (everything.page_cap, everything.left_by_cap) == (50, {})
