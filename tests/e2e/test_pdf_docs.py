"""A real PDF manual (Debian's gnuplot-doc: gnuplot.pdf, 311 pages) crawled from a loopback site
next to a malformed, an encrypted and an over-sized PDF: the manual is answered from and cited to
the page (``url#page=N``, the quote on that page as pdfium reads it), the three others are skipped
with their reasons and the crawl goes on."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from tests.conftest import CORPORA, LiveService, citeline_env, live_service, run_citeline, serve_directory
from tests.ingest.pdfs import make_pdf, malformed_pdf

pytestmark = pytest.mark.e2e

GNUPLOT_PDF = CORPORA / "gnuplot-doc" / "usr" / "share" / "doc" / "gnuplot" / "gnuplot.pdf"
MAX_BYTES = 2_000_000
DECIMALSIGN_PAGE = 145
"""The page of gnuplot.pdf (5.4.4) whose section is ``set decimalsign``."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, Any], Path]]:
    if not GNUPLOT_PDF.is_file():
        pytest.fail(f"corpus missing at {GNUPLOT_PDF}: run `make corpora`")
    root = tmp_path_factory.mktemp("pdf-site")
    shutil.copy(GNUPLOT_PDF, root / "gnuplot.pdf")
    (root / "broken.pdf").write_bytes(malformed_pdf())
    (root / "locked.pdf").write_bytes(make_pdf([["a locked manual page with secret text"]], encrypted=True))
    # A valid PDF made larger than the cap by a trailing comment: refused by size, before parsing.
    (root / "huge.pdf").write_bytes(GNUPLOT_PDF.read_bytes() + b"\n%" + b"x" * MAX_BYTES)
    links = " ".join(
        f'<li><a href="{name}">{name}</a></li>' for name in ("gnuplot.pdf", "broken.pdf", "locked.pdf", "huge.pdf")
    )
    (root / "index.html").write_text(
        "<html><head><title>Manuals</title></head><body><main><h1>Manuals</h1>"
        f"<p>The manuals of this site, as PDF files, one per program, for reading offline.</p><ul>{links}</ul>"
        "</main></body></html>"
    )
    data_dir = tmp_path_factory.mktemp("pdf-data")
    with serve_directory(root) as server:
        completed = run_citeline(
            ["ingest", server.base_url + "index.html", "--max-depth", "1", "--index", "pdfs",
             "--summary-json", str(data_dir / "summary.json")],
            citeline_env(data_dir, CITELINE_MAX_PAGE_BYTES=str(MAX_BYTES)),
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr[-3000:]
        summary = json.loads((data_dir / "summary.json").read_text())
        yield server.base_url, root, summary, data_dir


@pytest.fixture(scope="module")
def service(site: tuple[str, Path, dict[str, Any], Path]) -> Iterator[LiveService]:
    with live_service(site[3], index="pdfs") as live:
        yield live


def test_bad_pdfs_are_skipped_with_their_reasons(site: tuple[str, Path, dict[str, Any], Path]) -> None:
    base_url, _, summary, _ = site
    failures = [f for f in summary["failures"] if f["url"].endswith(".pdf")]
    reasons = {f["url"].removeprefix(base_url): f["reason"] for f in failures}
    assert set(reasons) == {"broken.pdf", "locked.pdf", "huge.pdf"}, summary["failures"]
    assert reasons["broken.pdf"].startswith("malformed PDF")
    assert reasons["locked.pdf"].startswith("encrypted PDF")
    assert f"larger than {MAX_BYTES} bytes" in reasons["huge.pdf"]
    assert summary["pages_indexed"] >= 1, "the manual"


def _page_text(pdf: Path, page: int) -> str:
    document = pdfium.PdfDocument(pdf)
    try:
        # citeline drops the controls pdfium emits (hyphenation marks): compare like with like.
        text = re.sub(r"[\x00-\x08\x0e-\x1f\ufffe\uffff]", "", document[page - 1].get_textpage().get_text_range())
        return " ".join(text.split())
    finally:
        document.close()


def test_answer_cites_the_manual_to_the_page(
    service: LiveService, site: tuple[str, Path, dict[str, Any], Path]
) -> None:
    base_url, root, _, _ = site
    body = service.ask("How do I change the decimal sign used in gnuplot tic labels?")
    assert body["abstained"] is False, body
    cited = [c for c in body["citations"] if c["url"] == base_url + "gnuplot.pdf"]
    assert cited, body["citations"]
    for citation in cited:
        page = citation["page"]
        assert citation["fragment_url"] == f"{base_url}gnuplot.pdf#page={page}"
        quote = " ".join(citation["quote"].split())
        assert quote in _page_text(root / "gnuplot.pdf", page), f"{quote!r} is not on page {page}"
    assert DECIMALSIGN_PAGE in {c["page"] for c in cited}
