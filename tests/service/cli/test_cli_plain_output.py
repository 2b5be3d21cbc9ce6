"""``citeline ingest`` and ``citeline eval`` with their output in a log, not a terminal: plain
progress lines while they run, and summaries whose every row reads whole at rich's 80 columns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citeline.indexes import HashEmbedder
from citeline.service.cli import app

BODY = "<p>{0} is described here in enough words to pass the extractor's minimum length check.</p>"
SUMMARY_KEYS = (
    "resumed", "pages fetched", "new / updated", "unchanged (of which 304)", "removed (gone or opted out)",
    "duplicates (aliased)", "skipped", "page cap", "passages added", "index now", "time", "stage seconds",
)  # fmt: skip
PROGRESS = re.compile(r"^ingest: \d+(/\d+)? pages .*\| indexed \d+, unchanged \d+, failed \d+, passages \d+ \|")


def _site(tmp_path: Path, pages: int = 5) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for n in range(pages):
        (site / f"page{n}.html").write_text(f"<html><body>{BODY.format(f'Topic {n}')}</body></html>")
    return site


@pytest.fixture
def hash_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from citeline import indexes

    monkeypatch.setenv("CITELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CITELINE_CONFIG", "/nonexistent")
    monkeypatch.setattr(indexes, "load_embedder", lambda *_a, **_k: HashEmbedder(32))


def _summary_lines(output: str, title: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index(title)
    return lines[start + 1 :]


@pytest.mark.usefixtures("hash_env")
def test_ingest_off_a_terminal_prints_progress_lines_and_a_whole_summary(tmp_path: Path) -> None:
    # A long base URL: the rows that quote it would be cut short ("…") in an 80-column table.
    base = "https://docs.example/a/rather/long/path/that/a/real/site/might/well/have/under/its/root/"
    args = ["ingest", "--dir", str(_site(tmp_path)), "--base-url", base, "--no-resume", "--index", "docs",
            "--max-pages", "4", "--progress-every", "0"]  # fmt: skip
    result = CliRunner().invoke(
        app,
        args,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("ingest: ")]
    assert len(progress) >= 2, result.output
    assert all(PROGRESS.match(line) for line in progress), progress
    assert "ETA" in progress[0]
    assert progress[-1].startswith("ingest: 4/4 pages (100%) | indexed 4, unchanged 0, failed 0, passages ")
    assert progress[-1].endswith(tuple(f"took {n}s" for n in range(60)))
    summary = _summary_lines(result.output, "ingest into 'docs':")
    assert [line.split(": ", 1)[0].strip() for line in summary] == list(SUMMARY_KEYS)
    assert "  page cap: REACHED at 4 pages; left out: files 1 (raise --max-pages)" in summary
    assert "  index now: 4 pages, 4 passages" in summary
    assert not any("…" in line for line in summary)
    assert not any(ch in result.output for ch in "┏━│┃")  # no table, no live bar


@pytest.mark.usefixtures("hash_env")
def test_ingest_progress_interval_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITELINE_PROGRESS_EVERY", "3600")
    result = CliRunner().invoke(
        app,
        ["ingest", "--dir", str(_site(tmp_path)), "--base-url", "https://docs.example/", "--no-resume"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    # An hour between lines: only the closing one.
    assert [line for line in result.output.splitlines() if line.startswith("ingest: ")] == [
        next(line for line in result.output.splitlines() if line.startswith("ingest: 5 pages | indexed 5,"))
    ]


@pytest.mark.usefixtures("hash_env")
def test_eval_off_a_terminal_prints_questions_done_and_plain_totals(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["ingest", "--dir", str(_site(tmp_path)), "--base-url", "https://docs.example/", "--no-resume"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    questions = tmp_path / "docs.jsonl"
    rows = [{"id": f"q{n}", "question": f"What is Topic {n}?", "gold_url": f"https://docs.example/page{n}.html"}
            for n in range(3)]  # fmt: skip
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = runner.invoke(
        app, ["eval", str(questions), "--retrieval-only", "--progress-every", "0"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("eval docs: ")]
    assert any(line.startswith("eval docs: 1/3 questions (33%) | ") and "ETA" in line for line in progress), progress
    assert progress[-1].startswith("eval docs: 3/3 questions (100%) | ")
    assert "took" in progress[-1]
    totals = _summary_lines(result.output, "citeline eval on index 'default':")
    assert totals, result.output
    assert all(re.match(r"^  [\w@/ .-]+: ", line) for line in totals), totals
    assert not any("…" in line for line in totals)


def test_ingest_through_a_pipe_prints_progress_and_a_whole_summary(tmp_path: Path) -> None:
    """The real thing: a process whose stdout and stderr are pipes, rich's console built on them."""
    site = _site(tmp_path, pages=3)
    program = (
        "import indexes; indexes.load_embedder = lambda *a, **k: indexes.HashEmbedder(32)\n"
        "from service.cli import main; main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"CITELINE_DATA_DIR": str(tmp_path / "data"), "CITELINE_CONFIG": "/nonexistent",
            "CITELINE_PROGRESS_EVERY": "0"}  # fmt: skip
    args = [sys.executable, "-c", program, "ingest", "--dir", str(site), "--base-url", "https://docs.example/",
            "--no-resume"]  # fmt: skip
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[3],
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(PROGRESS.match(line) for line in lines), done.stderr
    summary = _summary_lines(done.stderr, "ingest into 'default':")
    assert [line.split(": ", 1)[0].strip() for line in summary] == list(SUMMARY_KEYS)
    assert not any("…" in line for line in summary)
