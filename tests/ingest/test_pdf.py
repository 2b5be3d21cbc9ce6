from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from citeline.indexes import PDF_PAGE_KEY, HashEmbedder, PassageIndex
from citeline.ingest import ExtractionError, IngestInputs, IngestSettings, run_ingest
from citeline.ingest.chunk import ChunkSizes, chunk
from citeline.ingest.documents import extract_fetched, extract_markdown, extract_pdf, extract_plain
from citeline.ingest.fetch import Crawler, CrawlLimits, FetchedPage, FetchFailure
from citeline.ingest.pdf import PDF_TYPE, PdfLimits, close_worker, page_of, pdf_text, read_pdf
from citeline.ingest.warc import WarcRecorder, warc_pages
from citeline.service.answering.citations import fragment_url
from tests.ingest.pdfs import image_only_pdf, make_pdf, malformed_pdf

WORDS = "the gnuplot command {0} draws a plot of data from a file with lines and points for the reader"
PAGES = [
    [f"Chapter {n}", *(WORDS.format(f"page{n}line{i}") for i in range(12))] for n in range(1, 4)
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _stop_worker() -> Iterator[None]:
    yield
    close_worker()


def test_pdf_pages_are_kept_apart_by_form_feeds() -> None:
    pdf = read_pdf(make_pdf(PAGES, title="Manual"), "https://h/m.pdf")
    assert pdf.title == "Manual"
    assert [page.split("\n")[0] for page in pdf.pages] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    text = pdf_text(pdf.pages)
    assert text.count("\f") == 3
    for number in (1, 2, 3):
        assert page_of(text, text.index(f"page{number}line5")) == number


def test_a_passage_never_crosses_a_page() -> None:
    page = extract_pdf(make_pdf(PAGES), "https://h/m.pdf")
    passages = chunk(page.text, page.headings, ChunkSizes(target_words=500, max_words=600, min_words=400))
    assert len(passages) == 3, "one page each, although the sizes would pack two pages together"
    for number, passage in enumerate(passages, start=1):
        assert "\f" not in passage.text
        assert page_of(page.text, passage.start) == number
        assert f"page{number}line0" in passage.text


def test_html_text_never_holds_a_form_feed() -> None:
    html = (
        "<html><body><article><p>"
        + "A form\ffeed in a page is only a space here. " * 5
        + "</p></article></body></html>"
    )
    page = extract_fetched(FetchedPage("https://h/a", "https://h/a", 200, html, {}, 0, 0.0), "https://h/a")
    assert "\f" not in page.text


@pytest.mark.parametrize(
    ("data", "limits", "reason"),
    [
        (make_pdf([["secret"]], encrypted=True), PdfLimits(), "encrypted PDF"),
        (image_only_pdf(), PdfLimits(), "no text layer"),
        (malformed_pdf(), PdfLimits(), "malformed PDF"),
        (b"<html>not a pdf</html>", PdfLimits(), "no %PDF- header"),
        (make_pdf(PAGES), PdfLimits(max_pages=2), "PDF has 3 pages, over the cap of 2"),
    ],
)
def test_unreadable_pdfs_say_why(data: bytes, limits: PdfLimits, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        read_pdf(data, "https://h/bad.pdf", limits)


def test_a_slow_pdf_is_stopped_at_the_deadline_and_the_next_one_is_read() -> None:
    close_worker()  # a worker starting afresh (a new interpreter) takes far longer than 10 ms to answer
    with pytest.raises(ExtractionError, match=r"took over 0\.01 s"):
        read_pdf(make_pdf(PAGES), "https://h/slow.pdf", PdfLimits(timeout_s=0.01))
    assert read_pdf(make_pdf(PAGES), "https://h/m.pdf").pages[0].startswith("Chapter 1")


def test_markdown_headings_start_passages() -> None:
    source = "# Install\n\nRun the installer.\n\n```\n# not a heading\n```\n\nUsage\n-----\n\nCall it with " + (
        "words " * 30
    )
    page = extract_markdown(source, "https://h/readme.md")
    assert page.title == "Install"
    assert page.headings == {"Install", "Usage"}
    assert "# not a heading" in page.text
    passages = chunk(page.text, page.headings, ChunkSizes(min_words=1))
    assert [p.heading for p in passages] == ["Install", "Usage"]


def test_plain_text_first_line_is_the_title() -> None:
    page = extract_plain("NOTES\n\nThe text of\fthe notes file, long enough to be kept as a page.\n", "https://h/n.txt")
    assert page.title == "NOTES"
    assert "\f" not in page.text


def test_pdf_citation_links_to_its_page() -> None:
    assert fragment_url("https://h/m.pdf#x", "a quote", page=3) == "https://h/m.pdf#page=3"
    assert fragment_url("https://h/a.html", "a quote").startswith("https://h/a.html#:~:text=")


async def test_crawler_keeps_pdfs_as_bytes_and_follows_links_to_them() -> None:
    pdf = make_pdf(PAGES)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/docs/index.html":
            return httpx.Response(200, html='<a href="manual.pdf">manual</a> <a href="pic.png">pic</a>')
        if request.url.path == "/docs/manual.pdf":
            return httpx.Response(200, content=pdf, headers={"content-type": "application/pdf"})
        return httpx.Response(200, content=b"x", headers={"content-type": "image/png"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        crawler = Crawler(client, CrawlLimits(max_page_bytes=10_000_000))
        items = [item async for item in crawler.crawl(["http://h.test/docs/index.html"])]
    pdfs = [i for i in items if isinstance(i, FetchedPage) and i.media_type == PDF_TYPE]
    assert [(p.url, p.data, p.html) for p in pdfs] == [("http://h.test/docs/manual.pdf", pdf, "")]


async def test_crawler_caps_a_pdf_like_a_page() -> None:
    pdf = make_pdf(PAGES)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=pdf, headers={"content-type": "application/pdf"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        crawler = Crawler(client, CrawlLimits(max_page_bytes=len(pdf) // 2))
        items = [item async for item in crawler.crawl(["http://h.test/big.pdf"])]
    assert [(type(i), getattr(i, "kind", None)) for i in items] == [(FetchFailure, "size")]


async def test_directory_of_documents_is_indexed_with_pdf_pages(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.pdf").write_bytes(make_pdf(PAGES, title="The manual"))
    (docs / "locked.pdf").write_bytes(make_pdf(PAGES, encrypted=True))
    (docs / "scan.pdf").write_bytes(image_only_pdf())
    (docs / "broken.pdf").write_bytes(malformed_pdf())
    (docs / "readme.md").write_text("# Read me\n\n" + "This file explains the manual in enough words. " * 5)
    (docs / "notes.txt").write_text("Notes\n" + "A plain text file with enough words in it to keep. " * 5)
    settings = IngestSettings(data_dir=tmp_path / "data", index="t", per_host_delay=0)
    summary = await run_ingest(
        settings=settings,
        embedder=HashEmbedder(32),
        inputs=IngestInputs(directory=docs, base_url="https://docs.example/"),
    )
    reasons = {f.url.rsplit("/", 1)[1]: f.reason for f in summary.failures}
    assert set(reasons) == {"locked.pdf", "scan.pdf", "broken.pdf"}
    assert "encrypted" in reasons["locked.pdf"]
    assert "no text layer" in reasons["scan.pdf"]
    assert "malformed" in reasons["broken.pdf"]
    assert summary.pages_indexed == 3

    index = PassageIndex.open(tmp_path / "data", "t")
    try:
        stored = index.page("https://docs.example/manual.pdf")
        assert stored is not None
        assert stored.title == "The manual"
        hits = index.search(np.asarray(HashEmbedder(32).embed(["page2line3"])), k=50)
        pdf_hits = [h for h in hits if h.url.endswith(".pdf")]
        assert {h.metadata.get(PDF_PAGE_KEY) for h in pdf_hits} == {"1", "2", "3"}
        for hit in pdf_hits:  # a passage's page is the one its lines were written on
            assert {f"page{hit.metadata[PDF_PAGE_KEY]}"} == set(re.findall(r"page\d(?=line)", hit.text))
        assert all(PDF_PAGE_KEY not in h.metadata for h in hits if not h.url.endswith(".pdf"))
    finally:
        index.close()


def test_a_pdf_goes_through_a_warc_as_bytes(tmp_path: Path) -> None:
    pdf = make_pdf(PAGES)
    page = FetchedPage(
        "https://h/m.pdf", "https://h/m.pdf", 200, "", {"content-type": PDF_TYPE}, 0, 0.0, media_type=PDF_TYPE, data=pdf
    )
    with WarcRecorder(tmp_path / "crawl.warc.gz") as recorder:
        recorder.record(page)
    read = [item for item in warc_pages(tmp_path / "crawl.warc.gz") if isinstance(item, FetchedPage)]
    assert [(p.url, p.media_type, p.data) for p in read] == [("https://h/m.pdf", PDF_TYPE, pdf)]
