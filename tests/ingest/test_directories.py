"""citeline.ingest.directories: a local directory of HTML files as fetched pages."""

from __future__ import annotations

import random
from email.utils import formatdate
from pathlib import Path

import pytest

from citeline.ingest.directories import directory_pages
from citeline.ingest.fetch import FetchedPage, FetchFailure


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "guide" / "deep").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>home</body></html>", encoding="utf-8")
    (root / "guide" / "intro.htm").write_text("<p>intro</p>", encoding="utf-8")
    (root / "guide" / "deep" / "ünï cödé.html").write_text("<p>deep</p>", encoding="utf-8")
    (root / "guide" / "latin.html").write_bytes('<meta charset="iso-8859-1"><p>café naïve</p>'.encode("latin-1"))
    (root / "guide" / "notes.txt").write_text("not html")
    (root / "guide" / "logo.png").write_bytes(b"\x89PNG")
    (root / "binary.html").write_bytes(bytes(random.Random(7).randrange(256) for _ in range(3000)))
    outside = tmp_path / "outside.html"
    outside.write_text("<p>outside</p>")
    (root / "escape.html").symlink_to(outside)
    (root / "alias.html").symlink_to(root / "index.html")
    (root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    return root


def test_directory_pages(site_dir: Path) -> None:
    pages = list(directory_pages(site_dir, "https://docs.example/v1", max_pages=100))
    urls = [p.url for p in pages]
    assert urls == [
        "https://docs.example/v1/alias.html",
        "https://docs.example/v1/binary.html",
        "https://docs.example/v1/guide/deep/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.html",
        "https://docs.example/v1/guide/intro.htm",
        "https://docs.example/v1/guide/latin.html",
        "https://docs.example/v1/guide/notes.txt",
        "https://docs.example/v1/index.html",
    ]
    by_url = {p.url: p for p in pages if isinstance(p, FetchedPage)}
    latin = by_url["https://docs.example/v1/guide/latin.html"]
    assert "café naïve" in latin.html
    assert by_url["https://docs.example/v1/alias.html"].html == "<html><body>home</body></html>"
    assert isinstance(by_url["https://docs.example/v1/binary.html"].html, str)
    index_page = by_url["https://docs.example/v1/index.html"]
    assert (index_page.status, index_page.final_url, index_page.depth) == (200, index_page.url, 0)
    mtime = (site_dir / "index.html").stat().st_mtime
    assert index_page.headers == {"content-type": "text/html", "last-modified": formatdate(mtime, usegmt=True)}


def test_directory_pages_limits(site_dir: Path) -> None:
    pages = list(directory_pages(site_dir, "https://docs.example/", max_pages=2))
    assert [p.url for p in pages] == ["https://docs.example/alias.html", "https://docs.example/binary.html"]
    small = list(directory_pages(site_dir, "https://docs.example/", max_pages=100, max_bytes=100))
    assert "https://docs.example/binary.html" not in {p.url for p in small if isinstance(p, FetchedPage)}
    over = [p for p in small if isinstance(p, FetchFailure) and p.url == "https://docs.example/binary.html"]
    assert [p.kind for p in over] == ["size"], "a file over the cap is a failure the summary lists"


def test_directory_pages_say_how_many_files_a_cap_left_out(site_dir: Path) -> None:
    left: list[int] = []
    pages = list(directory_pages(site_dir, "https://docs.example/", max_pages=2, on_cap=left.append))
    assert len(pages) == 2
    assert left == [6], "alias and binary read; five HTML files and notes.txt not (escape.html: never opened)"
    everything = list(directory_pages(site_dir, "https://docs.example/", on_cap=left.append))
    assert len(everything) == 7, "no cap unless one is asked for"
    assert left == [6]


def test_directory_page_encodings(tmp_path: Path) -> None:
    (tmp_path / "bom16.html").write_bytes("<p>ŝpecial</p>".encode("utf-16"))
    (tmp_path / "cp1252.html").write_bytes(
        b'<meta http-equiv="Content-Type" content="text/html; charset=latin1">\x93q\x94'
    )
    (tmp_path / "bogus.html").write_bytes(b'<meta charset="zlib"><p>caf\xc3\xa9</p>')
    (tmp_path / "guess.html").write_bytes("<p>Übergrößenträger für Straßenbahnen</p>".encode("cp1252") * 5)
    pages = [p for p in directory_pages(tmp_path, "http://x/", max_pages=10) if isinstance(p, FetchedPage)]
    html = {p.url.rsplit("/", 1)[1]: p.html for p in pages}
    assert html["bom16.html"] == "<p>ŝpecial</p>"
    assert html["cp1252.html"].endswith("“q”")  # latin-1 labels mean windows-1252, as in browsers
    assert html["bogus.html"] == '<meta charset="zlib"><p>café</p>'
    assert "Übergrößenträger" in html["guess.html"]
