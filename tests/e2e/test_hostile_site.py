"""Ingest against a hostile loopback site: robots.txt, a gzip bomb, a redirect loop, a slow-loris
page, owner opt-outs, duplicates, a latin-1 page, a 404, a non-HTML page; then the same pages from
a recorded WARC, a gzipped sitemap (SQLite docs: a second documentation site), a local directory;
and the SSRF guard with no allow-list (real CLI, real embedder)."""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from citeline.indexes import PassageIndex
from tests.conftest import BIN, PYTHON_DOCS, SQLITE_DOCS, citeline_env, corpus

pytestmark = pytest.mark.e2e

PY_PAGES = {"json.html": "library/json.html", "csv.html": "library/csv.html", "io.html": "tutorial/inputoutput.html"}
SQLITE_PAGES = ["lang_vacuum.html", "lang_altertable.html", "datatype3.html"]
BOMB = gzip.compress(b"\0" * 200_000_000, compresslevel=9)  # ~200 KB on the wire, 200 MB decoded
LATIN1 = (
    "<html><head><meta charset='iso-8859-1'><title>Caf\xe9</title></head><body><h1>Caf\xe9 cr\xe8me</h1>"
    "<p>Un caf\xe9 cr\xe8me se pr\xe9pare avec un expresso et du lait chauff\xe9 \xe0 la vapeur, servi "
    "dans une grande tasse le matin.</p></body></html>"
).encode("latin-1")


class Hostile(http.server.BaseHTTPRequestHandler):
    requests: list[str]
    base: str

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", content_type: str = "text/html", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # one branch per kind of hostility
        path = self.path.split("?")[0]
        self.requests.append(path)
        py = Path(corpus(PYTHON_DOCS))
        if path == "/robots.txt":
            text = f"User-agent: *\nDisallow: /site/private/\nSitemap: {self.base}site/sitemap.xml.gz\n"
            return self.send(200, text.encode(), "text/plain")
        if path == "/site/index.html":
            links = [*PY_PAGES, "copy.html", "private/secret.html", "bomb.html", "loop.html", "slow.html",
                     "noai.html", "tdm.html", "latin1.html", "missing.html", "file.html"]  # fmt: skip
            body = "<html><body><h1>Hostile</h1>" + "".join(f'<a href="{link}">{link}</a> ' for link in links)
            return self.send(200, (body + "</body></html>").encode())
        name = path.removeprefix("/site/")
        if name in PY_PAGES or name == "copy.html":
            return self.send(200, (py / PY_PAGES.get(name, "library/json.html")).read_bytes())
        if name.startswith("sq/") and name[3:] in SQLITE_PAGES:
            return self.send(200, (Path(corpus(SQLITE_DOCS)) / name[3:]).read_bytes())
        if name == "bomb.html":
            return self.send(200, BOMB, Content_Encoding="gzip")
        if name in ("loop.html", "loop2.html"):
            target = "loop2.html" if name == "loop.html" else "loop.html"
            return self.send(302, Location=f"/site/{target}")
        if name == "slow.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(120):  # a byte every half second: never a read timeout, never done
                    self.wfile.write(b"<p>")
                    self.wfile.flush()
                    time.sleep(0.5)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if name == "noai.html":
            return self.send(200, (py / "library/csv.html").read_bytes(), X_Robots_Tag="noai")
        if name == "tdm.html":
            html = (
                (py / "library/os.html")
                .read_bytes()
                .replace(b"<head>", b'<head><meta name="tdm-reservation" content="1">', 1)
            )
            return self.send(200, html)
        if name == "latin1.html":
            return self.send(200, LATIN1, "text/html")  # no charset in the header: only the meta says latin-1
        if name == "file.html":
            return self.send(200, b"PK\x03\x04", "application/zip")  # a PDF is kept now: tests/e2e/test_pdf_docs.py
        if name == "sitemap.xml.gz":
            urls = "".join(f"<url><loc>{self.base}site/sq/{p}</loc></url>" for p in SQLITE_PAGES)
            xml = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
            return self.send(200, gzip.compress(xml.encode()), "application/gzip")
        return self.send(404, b"<html><body>not here</body></html>")


@contextmanager
def hostile_site() -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    Hostile.requests, Hostile.base = requests, base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, requests
    finally:
        server.shutdown()
        server.server_close()


# Runs a command in a fresh parent whose only child it is, and prints that child's peak RSS (KiB).
_PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]);"
    " print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def ingest(tmp_path: Path, args: list[str], name: str, **env: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    completed = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(BIN / "citeline"), "ingest", *args, "--index", name,
         "--summary-json", str(out)],
        env=citeline_env(tmp_path, CITELINE_TOTAL_TIMEOUT="4", **env), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert out.exists(), completed.stderr[-3000:]
    summary: dict[str, Any] = json.loads(out.read_text())
    summary["returncode"] = completed.returncode
    summary["peak_rss_mb"] = int(completed.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) / 1024
    return summary


def test_hostile_site_then_warc_sitemap_directory_and_ssrf(tmp_path: Path) -> None:
    warc = tmp_path / "crawl.warc.gz"
    with hostile_site() as (base, requests):
        started = time.monotonic()
        crawl = ingest(tmp_path, [base + "site/index.html", "--max-depth", "1", "--record-warc", str(warc)], "hostile")
        crawl_seconds = time.monotonic() - started
        rss_mb = crawl["peak_rss_mb"]
        assert crawl["returncode"] == 0
        skipped = crawl["skipped"]
        failures = {str(f["url"]).removeprefix(base + "site/"): f for f in crawl["failures"]}
        assert skipped["robots"] == 1
        assert failures["private/secret.html"]["kind"] == "robots"
        assert not any(r.startswith("/site/private/") for r in requests), "robots.txt is obeyed before fetching"
        assert failures["bomb.html"]["kind"] == "size"
        assert "too many redirects" in failures["loop.html"]["reason"]
        assert "timed out" in failures["slow.html"]["reason"]
        assert failures["noai.html"]["kind"] == failures["tdm.html"]["kind"] == "opt_out"
        assert failures["file.html"]["kind"] == "type"
        assert failures["missing.html"]["kind"] == "gone"
        assert crawl["duplicates"] == 1
        print(json.dumps({"crawl_seconds": round(crawl_seconds, 1), "max_rss_mb_bomb_included": round(rss_mb)}))
        assert rss_mb < 3000, "the bomb stopped at the cap (the embedder alone is ~1 GB)"

        index = PassageIndex.open(tmp_path, "hostile")
        latin1 = index.page(base + "site/latin1.html")
        assert latin1 is not None
        assert "café crème se prépare" in latin1.text
        json_page, copy_page = base + "site/json.html", base + "site/copy.html"
        assert index.alias_of(copy_page) == (json_page, "exact") or index.alias_of(json_page) == (copy_page, "exact")
        hostile_pages = set(index.page_urls())
        kept = {base + "site/" + p for p in ("csv.html", "io.html", "latin1.html")}
        assert kept <= hostile_pages
        assert crawl["pages_new"] == len(hostile_pages)
        index.close()

        before = len(requests)
        sitemap = ingest(tmp_path, ["--sitemap", base + "site/sitemap.xml.gz"], "sitemap")
        assert sitemap["returncode"] == 0
        assert sitemap["pages_new"] == len(SQLITE_PAGES)
        assert {r for r in requests[before:] if r.startswith("/site/sq/")} == {f"/site/sq/{p}" for p in SQLITE_PAGES}

        before = len(requests)
        blocked = ingest(tmp_path, [base + "site/index.html"], "blocked", CITELINE_ALLOW_HOSTS="[]")
        assert blocked["returncode"] != 0
        assert blocked["skipped"]["blocked"] == 1
        assert len(requests) == before, "no request reached a loopback address that was not allow-listed"

    replay = ingest(tmp_path, ["--warc", str(warc)], "replay")
    assert replay["returncode"] == 0
    index = PassageIndex.open(tmp_path, "replay")
    assert set(index.page_urls()) == hostile_pages, "a recorded crawl re-ingests to the same pages"
    index.close()

    local = ingest(tmp_path, ["--dir", str(PYTHON_DOCS / "faq"), "--base-url", "https://docs.python.org/3.11/faq/"],
                   "local")  # fmt: skip
    assert local["returncode"] == 0
    index = PassageIndex.open(tmp_path, "local")
    assert "https://docs.python.org/3.11/faq/programming.html" in index.page_urls()
    index.close()
