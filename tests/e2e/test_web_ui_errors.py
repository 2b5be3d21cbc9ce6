"""The web UI in headless Chromium shows why a streamed answer failed.

The failure has to be forced, so the service runs in process (uvicorn on a loopback port) with the
hash embedder and a generator that writes a draft and then fails: no real model is needed, but the
page, its script and the browser are the real ones (``make browser``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import uvicorn

from citeline.indexes import HashEmbedder
from citeline.service.api import create_app
from citeline.service.exceptions import GenerationError
from citeline.service.generation import ChatMessage, GenerationResult, TokenCallback
from citeline.service.settings import ServiceSettings
from tests.conftest import free_port, web_ui
from tests.service.helpers import one_page_index

pytestmark = pytest.mark.e2e

EMBEDDER = HashEmbedder(64)
TEXT = "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object."
DRAFT = "json.load reads a half-written"
# Markup in a problem's detail is text to show, never HTML to run.
DETAIL = "the model server went away <img src=x onerror=window.pwned=1>"


class DraftThenFail:
    """Streams a few words of draft, then fails as a model server that went away does."""

    @property
    def model_name(self) -> str:
        return "draft-then-fail"

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> GenerationResult:
        del messages, max_new_tokens, temperature, seed
        if on_text is not None:
            for i, word in enumerate(DRAFT.split(" ")):
                on_text(word if i == 0 else " " + word)
        raise GenerationError(DETAIL)


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    one_page_index(tmp_path, EMBEDDER, TEXT)
    app = create_app(ServiceSettings(data_dir=tmp_path, index="docs", top_k=1), embedder=EMBEDDER,
                     generator=DraftThenFail())  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_web_ui_shows_a_streamed_answer_failure(base_url: str) -> None:
    """Before, the page ignored the stream's ``error`` event: the unverified draft stayed on screen
    under "writing (draft, not yet verified)…" and nothing said the answer had failed."""
    with web_ui(base_url) as page:
        page.fill("#question", "How do I read a JSON file?")
        page.click("#ask-button")
        page.wait_for_function("!document.querySelector('#ask-button').disabled", timeout=60_000)
        status = page.inner_text("#status")
        assert status == f"503 Generation failed: {DETAIL}"
        assert page.is_visible("#status")
        assert page.inner_text("#draft") == "", "an unverified draft must not stay up as the answer"
        assert page.inner_text("#result") == ""
        assert page.evaluate("window.pwned") is None
        assert page.locator("#status img").count() == 0
