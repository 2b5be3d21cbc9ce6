"""A client that leaves a streamed answer stops the generation (real HTTP server on loopback)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from citeline.indexes import HashEmbedder, PassageIndex
from citeline.service.api import create_app
from citeline.service.generation import ChatMessage, GenerationResult, TokenCallback
from citeline.service.settings import ServiceSettings
from tests.conftest import free_port
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
TEXT = "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object."


class SlowGenerator:
    """Writes up to 400 words, one every 20 ms, and remembers how many it wrote before being stopped."""

    def __init__(self) -> None:
        self.words = 0
        self.stopped = threading.Event()

    @property
    def model_name(self) -> str:
        return "slow"

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        started = time.perf_counter()
        for i in range(min(400, max_new_tokens)):
            time.sleep(0.02)
            self.words += 1
            if on_text is not None and on_text(f" word{i}"):
                self.stopped.set()
                break
        return GenerationResult("json.load [1].", 10, self.words, 0.02, time.perf_counter() - started)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, SlowGenerator]]:
    one_page_index(tmp_path, EMBEDDER, TEXT)
    generator = SlowGenerator()
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=1), embedder=EMBEDDER, generator=generator)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", generator
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_disconnecting_stops_the_generation(server: tuple[str, SlowGenerator]) -> None:
    base, generator = server
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{base}/v1/ask", json={"question": "How do I read JSON?", "stream": True}) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: draft"):
                break  # the first token is here: leave
    assert generator.stopped.wait(10), "the generator was told to stop"
    assert generator.words < 50, generator.words


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    one_page_index(tmp_path, EMBEDDER, TEXT)
    generator = SlowGenerator()
    settings = ServiceSettings(data_dir=tmp_path, index="docs", top_k=1, max_queue=0)
    app = create_app(settings, embedder=EMBEDDER, generator=generator)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        base = f"http://127.0.0.1:{port}"
        first = threading.Thread(target=httpx.post, args=(f"{base}/v1/ask",), kwargs={"json": {"question": "JSON?"},
                                                                                      "timeout": 60})  # fmt: skip
        first.start()
        while generator.words == 0:
            time.sleep(0.01)
        refused = httpx.post(f"{base}/v1/ask", json={"question": "JSON again?"}, timeout=30)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["title"] == "Busy"
        first.join(timeout=60)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_slow_index_work_never_blocks_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening an index (a FAISS rebuild: seconds on a large store) ran on the event loop, so every
    other request, /healthz included, waited for it."""
    one_page_index(tmp_path, EMBEDDER, TEXT)
    real_open = PassageIndex.open

    def slow_open(*args: Any, **kwargs: Any) -> PassageIndex:
        time.sleep(3)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PassageIndex, "open", slow_open)
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=1), embedder=EMBEDDER,
                     generator=SlowGenerator())  # fmt: skip
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        base = f"http://127.0.0.1:{port}"
        searched: list[httpx.Response] = []
        search = threading.Thread(
            target=lambda: searched.append(httpx.get(f"{base}/v1/search", params={"q": "json"}, timeout=30))
        )
        search.start()
        time.sleep(0.5)  # the search is now opening the index
        started = time.perf_counter()
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
        assert time.perf_counter() - started < 1.5
        search.join(timeout=30)
        assert searched[0].status_code == 200
        assert searched[0].json()["hits"][0]["text"] == TEXT
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


class GatedGenerator:
    """Starts writing, then waits for ``go``: the stream stays open as long as the test wants."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()

    @property
    def model_name(self) -> str:
        return "gated"

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        self.started.set()
        assert self.go.wait(30)
        if on_text is not None:
            on_text(" json.load")
        return GenerationResult("json.load(fp) deserializes fp [1].", 10, 3, 0.01, 0.01)


def test_a_stream_holds_its_index_until_it_ends(tmp_path: Path) -> None:
    """An index replaced while a streamed answer reads it is closed only once that stream has ended."""
    one_page_index(tmp_path, EMBEDDER, TEXT)
    generator = GatedGenerator()
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=1), embedder=EMBEDDER,
                     generator=generator)  # fmt: skip
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    events: list[str] = []

    def stream() -> None:
        body = {"question": "How do I read JSON?", "stream": True}
        with httpx.stream("POST", f"{base}/v1/ask", json=body, timeout=60) as response:
            events.extend(line for line in response.iter_lines() if line.startswith("event:"))

    streaming = threading.Thread(target=stream)
    try:
        closed: list[PassageIndex] = []
        app.state.resources.registry.on_close(closed.append)
        streaming.start()
        assert generator.started.wait(30)
        # The index is removed and built again while the answer is being written.
        shutil.rmtree(tmp_path / "indexes" / "docs")
        one_page_index(tmp_path, EMBEDDER, "csv.writer(f) returns a writer object for rows.")
        found = httpx.get(f"{base}/v1/search", params={"q": "csv writer"}, timeout=30)
        assert found.status_code == 200
        assert found.json()["hits"][0]["text"].startswith("csv.writer")
        assert closed == [], "the stream still holds the index it answers from"
        generator.go.set()
        streaming.join(timeout=30)
        assert events[-1] == "event: answer", events
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(closed) == 1, "closed once the stream ended"
    finally:
        generator.go.set()
        uv.should_exit = True
        thread.join(timeout=10)
