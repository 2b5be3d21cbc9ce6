"""Plain progress off a terminal: the interval, rate and ETA arithmetic, on a fake clock."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from citeline.service.cli._progress import PlainProgress, StageProgress, format_duration, plain_output, progress_line


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (4.4, "4s"), (59.6, "1m00s"), (185, "3m05s"), (7620, "2h07m"), (-3, "0s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_line_gives_rate_and_eta_when_the_total_is_known() -> None:
    line = progress_line("ingest", 30, 120, 15.0, unit="pages", details=[("indexed", 25), ("failed", 5)])
    assert line == "ingest: 30/120 pages (25%) | indexed 25, failed 5 | 2.00 pages/s | ETA 45s | elapsed 15s"


def test_progress_line_without_a_total_or_a_rate() -> None:
    assert progress_line("ingest", 7, None, 2.0, unit="pages") == "ingest: 7 pages | 3.50 pages/s | elapsed 2s"
    assert progress_line("eval", 0, 10, 0.0, unit="questions") == (
        "eval: 0/10 questions (0%) | 0.00 questions/s | ETA unknown | elapsed 0s"
    )


def test_progress_line_final_says_how_long_the_run_took_and_no_eta() -> None:
    # A page cap is an upper bound: a run may end below it, and the last line must not promise more.
    line = progress_line("ingest", 50, 100, 100.0, unit="pages", final=True)
    assert line == "ingest: 50/100 pages (50%) | 0.50 pages/s | took 1m40s"


def test_plain_progress_prints_at_most_once_per_interval() -> None:
    clock, lines = FakeClock(), list[str]()
    progress = PlainProgress("eval docs", "questions", lines.append, every=10.0, total=40, clock=clock)
    for done in range(1, 5):  # four steps in 4 s: nothing yet
        clock.now += 1.0
        progress.update(done)
    assert lines == []
    clock.now += 6.0
    progress.update(5)
    assert lines == ["eval docs: 5/40 questions (12%) | 0.50 questions/s | ETA 1m10s | elapsed 10s"]
    clock.now += 9.9
    progress.update(6)
    assert len(lines) == 1


def test_plain_progress_ticks_while_nothing_changes() -> None:
    """A long embedding batch calls back nothing: the line still comes, with the rate falling."""
    clock, lines = FakeClock(), list[str]()
    progress = PlainProgress("ingest", "pages", lines.append, every=10.0, clock=clock)
    progress.update(20, details=[("passages", 300)])
    clock.now += 10.0
    progress.tick()
    clock.now += 5.0
    progress.tick()
    clock.now += 5.0
    progress.tick()
    assert lines == [
        "ingest: 20 pages | passages 300 | 2.00 pages/s | elapsed 10s",
        "ingest: 20 pages | passages 300 | 1.00 pages/s | elapsed 20s",
    ]


def test_plain_progress_finish_prints_whatever_the_interval() -> None:
    clock, lines = FakeClock(), list[str]()
    progress = PlainProgress("ingest", "pages", lines.append, every=3600.0, total=100, clock=clock)
    clock.now += 4.0
    progress.update(8)
    progress.finish()
    assert lines == ["ingest: 8/100 pages (8%) | 2.00 pages/s | took 4s"]


def test_plain_progress_with_no_interval_prints_every_step() -> None:
    clock, lines = FakeClock(), list[str]()
    progress = PlainProgress("ingest", "pages", lines.append, every=0.0, clock=clock)
    for done in range(3):
        progress.update(done)
    assert len(lines) == 3


def test_ticking_thread_stops_with_its_block() -> None:
    lines: list[str] = []
    progress = PlainProgress("ingest", "pages", lines.append, every=0.0)
    with progress.ticking() as ticking:
        assert ticking is progress
    count = len(lines)
    progress.tick()
    assert len(lines) == count + 1  # still usable; and no thread left printing (joined on exit)


def test_stage_progress_says_when_each_stage_starts_runs_and_ends() -> None:
    clock, lines = FakeClock(), list[str]()
    stages = StageProgress("models prepare", lines.append, every=10.0, clock=clock)
    stages.update("assemble", 0.0)
    clock.now += 10.0
    stages.update("assemble", 0.42)
    clock.now += 2.0
    stages.update("assemble", 1.0)
    stages.update("export", 0.0)
    clock.now += 25.0
    stages.tick()
    stages.update("finish", 0.5)  # a stage left short of 1.0 still gets its end line
    assert lines == [
        "models prepare: assemble started",
        "models prepare: assemble 42% | elapsed 10s",
        "models prepare: assemble done | took 12s",
        "models prepare: export started",
        "models prepare: export 0% | elapsed 25s",
        "models prepare: export done | took 25s",
        "models prepare: finish started",
    ]
    clock.now += 100.0
    stages.update("finish", 1.0)
    stages.tick()
    assert lines[-1] == "models prepare: finish done | took 1m40s"


def test_plain_output_off_a_terminal_and_on_a_dumb_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert plain_output(Console(file=io.StringIO()))
    assert not plain_output(Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.setenv("TERM", "dumb")
    assert plain_output(Console(file=io.StringIO(), force_terminal=True))
