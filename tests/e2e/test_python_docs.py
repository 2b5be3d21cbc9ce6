"""End to end on real Python 3.11 docs pages: the real crawler over loopback, the real embedder,
real FAISS, the real OpenVINO generator, and ``citeline serve`` as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    BIN,
    LiveService,
    StaticServer,
    assert_quote_on_page,
    citeline_env,
    live_service,
    run_citeline,
    web_ui,
)

pytestmark = pytest.mark.e2e

PUBLIC = "https://docs.python.org/3.11/"
PAGES = ["library/json.html", "library/csv.html", "tutorial/inputoutput.html", "library/pathlib.html"]
DEAD_HOST = "http://127.0.0.1:9/unreachable.html"  # discard port: nothing listens on loopback

# Runs the real CLI in-process and reports which heavy service modules the ingest pulled in.
_INGEST_AND_REPORT_IMPORTS = """
import json, sys
from citeline.service.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'litestar', 'openvino_genai', 'uvicorn'})
    print('HEAVY=' + json.dumps(heavy))
"""


@pytest.fixture(scope="module")
def ingested(python_docs: StaticServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    data_dir = tmp_path_factory.mktemp("python-docs-data")
    seeds = [python_docs.base_url + page for page in PAGES]
    seeds += [python_docs.base_url + "library/no-such-page.html", DEAD_HOST]
    summary_path = data_dir / "summary.json"
    completed = subprocess.run(
        [
            sys.executable, "-c", _INGEST_AND_REPORT_IMPORTS, "ingest", *seeds,
            "--max-depth", "0", "--index", "py",
            "--map-url", f"{python_docs.base_url}={PUBLIC}",
            "--summary-json", str(summary_path),
        ],
        env=citeline_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return data_dir, json.loads(summary_path.read_text()), completed.stdout


@pytest.fixture(scope="module")
def service(ingested: tuple[Path, dict[str, Any], str], python_docs: StaticServer) -> Iterator[LiveService]:
    # Jobs started over HTTP cite the public site: the mapping is the server's, never a request's.
    url_maps = json.dumps([f"{python_docs.base_url}={PUBLIC}"])
    with live_service(ingested[0], index="py", CITELINE_INGEST_URL_MAPS=url_maps) as live:
        yield live


def assert_citations_resolve(body: dict[str, Any], python_docs: StaticServer) -> None:
    """Every citation points at a crawled page, quotes text really on that page, and its
    fragment link is built from that quote."""
    assert body["citations"], body
    for citation in body["citations"]:
        assert citation["url"].startswith(PUBLIC)
        assert citation["end"] > citation["start"]
        page = (python_docs.directory / citation["url"].removeprefix(PUBLIC)).read_text()
        assert_quote_on_page(citation["quote"], page)
        assert citation["fragment_url"].startswith(citation["url"] + "#:~:text=")
    ids = {c["id"] for c in body["citations"]}
    for sentence in body["sentences"]:
        assert set(sentence["citations"]) <= ids


def test_ingest_reports_failures_and_keeps_going(ingested: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, stdout = ingested
    assert summary["pages_indexed"] == len(PAGES)
    assert summary["index_pages"] == len(PAGES)
    assert summary["index_passages"] > 40
    reasons = {f["url"]: f["reason"] for f in summary["failures"]}
    # robots.txt comes first: an unreachable host is "disallow all" (RFC 9309), and says why.
    assert "unreachable (ConnectError)" in reasons[DEAD_HOST]
    assert any(url.endswith("no-such-page.html") and reason == "HTTP 404" for url, reason in reasons.items())
    assert "HEAVY=[]" in stdout, "offline ingestion must not load the service stack"


def test_reingest_does_not_duplicate(ingested: tuple[Path, dict[str, Any], str], python_docs: StaticServer) -> None:
    data_dir, first, _ = ingested
    completed = run_citeline(
        ["ingest", python_docs.base_url + PAGES[0], "--max-depth", "0", "--index", "py",
         "--map-url", f"{python_docs.base_url}={PUBLIC}", "--summary-json", str(data_dir / "again.json")],
        citeline_env(data_dir),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    again = json.loads((data_dir / "again.json").read_text())
    assert (again["pages_unchanged"], again["pages_indexed"]) == (1, 0)
    assert again["index_passages"] == first["index_passages"]


def test_json_question_is_answered_from_the_json_docs(service: LiveService, python_docs: StaticServer) -> None:
    body = service.ask("How do I read a JSON file in Python?")
    assert body["abstained"] is False, body
    assert "json.load" in body["answer"]
    assert any(
        c["url"] in (PUBLIC + "library/json.html", PUBLIC + "tutorial/inputoutput.html") for c in body["citations"]
    )
    assert_citations_resolve(body, python_docs)
    assert body["timings"]["total_ms"] >= body["timings"]["generate_ms"] > 0


def test_streamed_answer_shows_verified_sentences_before_the_answer(service: LiveService) -> None:
    """Real model, real server: each ``sentence`` event is one of the answer's first sentences, in
    order, with its citations, and arrives before the answer is finished."""
    streamed = 0
    for question in ("How do I read a JSON file in Python?", "Which function writes rows to a CSV file?"):
        with httpx.stream(
            "POST", f"{service.base_url}/v1/ask", json={"question": question, "stream": True}, timeout=300
        ) as response:
            received: list[tuple[str, Any]] = []
            event = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    received.append((event, json.loads(line.removeprefix("data:").strip())))
        kinds = [kind for kind, _ in received]
        answer = received[-1][1]
        assert kinds[-1] == "answer", kinds
        sentences = [data for kind, data in received if kind == "sentence"]
        assert [s["position"] for s in sentences] == list(range(len(sentences)))
        assert [s["sentence"] for s in sentences] == answer["sentences"][: len(sentences)]
        by_id = {c["id"]: c for c in answer["citations"]}
        for sent in sentences:
            assert sent["sentence"]["supported"] is True
            assert sent["citations"] == [by_id[i] for i in sent["sentence"]["citations"]]
            assert sent["elapsed_ms"] <= answer["timings"]["total_ms"]
        if sentences:
            assert answer["timings"]["first_verified_sentence_ms"] == sentences[0]["elapsed_ms"]
        streamed += len(sentences)
    # Whether the real model's first sentence passes the cheap check varies (it did not in a CI run),
    # so the invariants above are what is asserted; the fakes prove sentences do go out early.
    print(json.dumps({"streamed_sentences": streamed}))


def test_csv_question_cites_the_csv_page(service: LiveService, python_docs: StaticServer) -> None:
    body = service.ask("Which function writes rows to a CSV file?")
    assert body["abstained"] is False, body
    assert "writer" in body["answer"]
    assert any(c["url"] == PUBLIC + "library/csv.html" for c in body["citations"])
    assert_citations_resolve(body, python_docs)


@pytest.mark.parametrize(
    "question",
    ["Who won the 2018 FIFA World Cup?", "How do I create a pool of worker threads with concurrent.futures?"],
)
def test_off_corpus_question_abstains(service: LiveService, question: str) -> None:
    body = service.ask(question)
    assert body["abstained"] is True, body
    assert body["citations"] == []
    assert body["answer"] == "The sources do not answer this question."


def test_search_and_operational_endpoints(service: LiveService) -> None:
    hits = httpx.get(f"{service.base_url}/v1/search", params={"q": "csv writer writerow", "k": 3}).json()["hits"]
    assert hits[0]["url"] == PUBLIC + "library/csv.html"
    assert httpx.get(f"{service.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{service.base_url}/readyz").json()
    assert ready["indexes"] == ["py"]
    assert ready["generator"] == "qwen2.5-coder-1.5b-instruct-ov-int4"
    schema = httpx.get(f"{service.base_url}/schema/openapi.json").json()
    assert "/v1/ask" in schema["paths"]


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"question": ""}, 400), ({"question": "  "}, 422), ({"question": "json?", "index": "nope"}, 404)],
)
def test_bad_input_gets_problem_details(service: LiveService, payload: dict[str, Any], status: int) -> None:
    response = httpx.post(f"{service.base_url}/v1/ask", json=payload, timeout=30)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    oversize = httpx.post(f"{service.base_url}/v1/ask", content=b"{" + b" " * 100_000 + b"}", timeout=30)
    assert oversize.status_code == 413


def test_cli_ask_prints_a_cited_answer(ingested: tuple[Path, dict[str, Any], str]) -> None:
    completed = run_citeline(["ask", "How do I write an object as JSON to a file?", "--index", "py", "--json"],
                             citeline_env(ingested[0]))  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    body = json.loads(completed.stdout)
    assert body["abstained"] is False, body
    assert "dump" in body["answer"]
    assert {c["url"] for c in body["citations"]} <= {PUBLIC + p for p in PAGES}
    assert (BIN / "citeline").exists()


def test_verified_fields_flag_policy_and_several_candidates(service: LiveService, python_docs: StaticServer) -> None:
    body = service.ask("How do I write rows to a CSV file?", policy="flag", n=2)
    assert body["policy"] == "flag"
    assert 1 <= len(body["candidates"]) <= 2
    assert body["agreement"] is not None
    for sentence in body["sentences"]:
        assert isinstance(sentence["supported"], bool)
        assert 0.0 <= sentence["score"] <= 1.0
    assert 0.0 <= body["citation_recall"] <= 1.0
    assert 0.0 <= body["generator_citation_precision"] <= 1.0
    if not body["abstained"]:
        assert_citations_resolve(body, python_docs)
    strict = service.ask("How do I write rows to a CSV file?")
    assert all(s["supported"] for s in strict["sentences"]), "strict answers keep only supported sentences"


def test_official_openai_client_gets_cited_answers_streaming_and_not(service: LiveService) -> None:
    """The `openai` SDK, unchanged, against the running service: citations as url_citation annotations."""
    import openai

    client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="not-needed-on-loopback", timeout=300)
    question = {"role": "user", "content": "How do I read a JSON file in Python?"}
    completion = client.chat.completions.create(model="citeline", messages=[question])
    message = completion.choices[0].message
    assert message.content
    assert "json.load" in message.content
    assert message.annotations, "citations travel as url_citation annotations"
    for annotation in message.annotations:
        assert annotation.type == "url_citation"
        cited = annotation.url_citation
        assert cited.url.startswith(PUBLIC)
        assert "#:~:text=" in cited.url
        assert 0 <= cited.start_index < cited.end_index <= len(message.content)

    stream = client.chat.completions.create(model="citeline", messages=[question], stream=True)
    content, annotations = [], []
    for chunk in stream:
        delta = chunk.choices[0].delta
        content.append(delta.content or "")
        annotations.extend((delta.model_extra or {}).get("annotations") or [])
    assert "json.load" in "".join(content)
    assert annotations
    assert annotations[0]["type"] == "url_citation"

    follow_up = client.chat.completions.create(
        model="citeline",
        messages=[
            question,
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": "And how do I write one?"},
        ],
    )
    standalone = (follow_up.model_extra or {})["citeline"]["standalone_question"]
    assert "json" in standalone.lower(), standalone


SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ui.png"


def test_web_ui_in_headless_chromium(service: LiveService, tmp_path: Path) -> None:
    """The served page, in a real headless Chromium: ask, watch it stream, open a citation's quote."""
    with web_ui(service.base_url) as page:
        page.fill("#question", "How do I read a JSON file in Python?")
        page.click("#ask-button")
        page.wait_for_selector(".answer-text", timeout=240_000)
        text = page.inner_text(".answer-text")
        assert "json.load" in text
        page.click(".cite")
        quote = page.inner_text(".quote blockquote")
        assert len(quote) > 20
        link = page.get_attribute(".quote a.open-source", "href")
        assert link
        assert link.startswith(PUBLIC)
        assert "#:~:text=" in link
        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) >= (1280, 600)
    assert len(data) > 20_000, "a blank page compresses to almost nothing"
    if os.environ.get("CITELINE_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(data)


def test_ingest_job_over_http_while_questions_are_answered(service: LiveService, python_docs: StaticServer) -> None:
    """A job started over HTTP crawls real pages into a new index while /v1/ask keeps answering."""
    seeds = [python_docs.base_url + "library/shutil.html", python_docs.base_url + "library/tempfile.html"]
    # A seed shaped like an option, or a mapping of the caller's own, never starts a job.
    for hostile in (
        {"seeds": ["--dir=/"], "index": "jobs"},
        {"seeds": seeds, "index": "jobs", "map_url": [f"{python_docs.base_url}=https://evil.example/"]},
    ):
        refused = httpx.post(f"{service.base_url}/v1/ingest", json=hostile, timeout=30)
        assert refused.status_code in (400, 422), refused.text
    assert httpx.get(f"{service.base_url}/v1/ingest", timeout=10).json() == []
    started = httpx.post(
        f"{service.base_url}/v1/ingest", json={"seeds": seeds, "index": "jobs", "max_depth": 0}, timeout=30
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    during = service.ask("How do I read a JSON file in Python?")
    assert during["abstained"] is False
    deadline = time.monotonic() + 300
    while (job := httpx.get(f"{service.base_url}/v1/ingest/{job_id}", timeout=10).json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(1)
    assert job["state"] == "succeeded", job
    assert job["summary"]["pages_new"] == 2
    found = httpx.get(f"{service.base_url}/v1/search", params={"q": "copy a file with its permissions",
                                                              "index": "jobs"}, timeout=30).json()  # fmt: skip
    assert found["hits"][0]["url"] == PUBLIC + "library/shutil.html", found


def test_web_ui_flags_and_compares_answers(service: LiveService) -> None:
    """flag policy and two candidates side by side, in the real browser."""
    with web_ui(service.base_url) as page:
        page.fill("#question", "Which function writes rows to a CSV file?")
        page.select_option("#policy", "flag")
        page.fill("#n", "2")
        page.click("#ask-button")
        page.wait_for_selector(".agreement, .answer-text", timeout=300_000)
        answers = page.locator(".answers .answer").count()
        assert answers in (0, 2), "two distinct candidates side by side, or one when both said the same"
        assert page.locator(".answer-text .sentence").count() >= 1
