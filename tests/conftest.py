"""Shared fixtures: real corpora served on loopback, the real CLI and a real service process."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import lxml.html
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / ".cache" / "corpora"
PYTHON_DOCS = CORPORA / "python3.11-doc" / "usr" / "share" / "doc" / "python3.11" / "html"
SQLITE_DOCS = CORPORA / "sqlite3-doc" / "usr" / "share" / "doc" / "sqlite3"
BIN = Path(sys.executable).parent


def corpus(path: Path) -> Path:
    if not (path / "index.html").is_file():
        pytest.fail(f"corpus missing at {path}: run `make corpora` (the e2e tests need the real pages)")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def __init__(self, *args: Any, requests: list[str], **kwargs: Any) -> None:
        self.requests = requests
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.requests.append(f"{self.command} {self.path} {code}")


@dataclass
class StaticServer:
    base_url: str
    directory: Path
    requests: list[str] = field(default_factory=list)
    """``METHOD PATH STATUS`` of every request served, in order (a 304 shows as 304)."""


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[StaticServer]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) for the duration of the block."""
    requests: list[str] = []
    handler = functools.partial(_QuietHandler, directory=str(directory), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StaticServer(f"http://127.0.0.1:{server.server_address[1]}/", directory, requests)
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def citeline_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``citeline`` subprocess. The tests crawl their own loopback mirrors: the
    SSRF guard is opened for 127.0.0.1 on purpose, and no politeness delay is owed to ourselves."""
    env = dict(
        os.environ,
        CITELINE_DATA_DIR=str(data_dir),
        HF_HUB_OFFLINE="1",
        CITELINE_CONFIG="/nonexistent",
        CITELINE_ALLOW_HOSTS='["127.0.0.1"]',
        CITELINE_PER_HOST_DELAY="0",
    )
    env.update(extra)
    return env


def run_citeline(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "citeline"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class LiveService:
    base_url: str
    process: subprocess.Popen[str]
    data_dir: Path

    def ask(self, question: str, **extra: Any) -> dict[str, Any]:
        """POST /v1/ask and return the answer (the request must succeed)."""
        response = httpx.post(f"{self.base_url}/v1/ask", json={"question": question, **extra}, timeout=180)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextlib.contextmanager
def live_service(data_dir: Path, index: str, ready_timeout: float = 300, **env: str) -> Iterator[LiveService]:
    """Start ``citeline serve`` as its own process on a loopback port; wait for /readyz. ``env``
    adds ``CITELINE_*`` variables."""
    port = free_port()
    log = (data_dir / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "citeline"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=citeline_env(data_dir, CITELINE_INDEX=index, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"citeline serve exited with {process.returncode}: {(data_dir / log.name).read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"citeline serve not ready after {ready_timeout} s")
            time.sleep(0.5)
        yield LiveService(base_url, process, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def python_docs() -> Iterator[StaticServer]:
    with serve_directory(corpus(PYTHON_DOCS)) as server:
        yield server


@pytest.fixture(scope="session")
def sqlite_docs() -> Iterator[StaticServer]:
    with serve_directory(corpus(SQLITE_DOCS)) as server:
        yield server


@contextlib.contextmanager
def web_ui(base_url: str) -> Iterator[Any]:
    """The service's web UI in headless Chromium (Debian's package), loaded and ready: yields the page."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed (make browser)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(base_url + "/")
            page.wait_for_selector("#index option", state="attached")
            yield page
        finally:
            browser.close()


def assert_quote_on_page(quote: str, html: str) -> None:
    """Each line of ``quote`` (a block of the extracted text) is visible text of the page, in order.

    Lines are checked one by one because adjacent blocks (two paragraphs, a list item and its
    definition) may have no whitespace between them in the HTML source. Sphinx's "¶" permalinks,
    shown only on hover, are dropped as citeline drops them.
    """
    page = " ".join(lxml.html.fromstring(html).text_content().replace("¶", " ").split())
    position = 0
    for line in quote.split("\n"):
        wanted = " ".join(line.split())
        if not wanted:
            continue
        found = page.find(wanted, position)
        assert found >= 0, f"{wanted!r} is not on the page (after offset {position})"
        position = found + len(wanted)
