"""Progress and summaries that read the same in a log file as on a terminal.

Rich's live bar draws nothing when stderr is not a terminal (``citeline ingest > log 2>&1``, a CI
step, a job runner), so a long run looked dead for many minutes. Off a terminal the commands print
one plain line every ``--progress-every`` seconds instead, and their summaries as ``key: value``
lines: a rich table squeezed into the 80 columns rich assumes off a terminal cuts cells short.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from rich.console import Console

PROGRESS_EVERY_ENV = "CITELINE_PROGRESS_EVERY"
DEFAULT_PROGRESS_EVERY = 10.0
PROGRESS_EVERY_HELP = (
    "Off a terminal, print a plain progress line every this many seconds (0: at every step)."
    f" Env: {PROGRESS_EVERY_ENV}."
)


def plain_output(console: Console) -> bool:
    """Whether ``console`` goes somewhere a live bar cannot be drawn.

    Asked at run time, not from ``console.is_interactive``, which rich fixes when the console is
    built (at import, before a test runner or a caller swaps the stream)."""
    return not console.is_terminal or console.is_dumb_terminal


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for a progress line, exact enough to plan by."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(
    label: str,
    done: int,
    total: int | None,
    elapsed: float,
    *,
    unit: str,
    details: Sequence[tuple[str, int]] = (),
    final: bool = False,
) -> str:
    """One self-contained line: counts, the average rate so far and, when the total is known, the
    time left at that rate."""
    count = f"{done}/{total} {unit}" if total else f"{done} {unit}"
    if total:
        count += f" ({min(100, math.floor(100 * done / total))}%)"
    parts = [f"{label}: {count}"]
    if details:
        parts.append(", ".join(f"{name} {value}" for name, value in details))
    rate = done / elapsed if elapsed > 0 else 0.0
    parts.append(f"{rate:.2f} {unit}/s")
    if not final and total and done < total:
        parts.append(f"ETA {format_duration((total - done) / rate)}" if rate > 0 else "ETA unknown")
    parts.append(f"{'took' if final else 'elapsed'} {format_duration(elapsed)}")
    return " | ".join(parts)


@dataclass(slots=True)
class _State:
    done: int = 0
    total: int | None = None
    details: tuple[tuple[str, int], ...] = ()


@dataclass
class PlainProgress:
    """Prints ``progress_line`` through ``emit`` at most every ``every`` seconds of ``clock``.

    ``update`` records the latest counts and prints when the interval has passed; ``tick`` prints
    the latest counts when it has passed even if nothing changed (a long embedding batch, a slow
    server), so a reader can tell a stalled run from a dead one. ``ticking()`` calls ``tick`` from a
    thread; tests call it themselves with a fake clock instead of sleeping."""

    label: str
    unit: str
    emit: Callable[[str], None]
    every: float = DEFAULT_PROGRESS_EVERY
    total: int | None = None
    details: Sequence[tuple[str, int]] = ()
    """The counts a line shows before the first ``update`` (each at zero, say)."""
    clock: Callable[[], float] = time.monotonic
    _started: float = field(init=False)
    _last: float = field(init=False)
    _state: _State = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._started = self._last = self.clock()
        self._state = _State(total=self.total, details=tuple(self.details))

    def update(self, done: int, *, total: int | None = None, details: Sequence[tuple[str, int]] = ()) -> None:
        with self._lock:
            self._state = _State(done, total if total is not None else self._state.total, tuple(details))
        self.tick()

    def tick(self) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last < self.every:
                return
            self._last = now
            # Printed under the lock: a tick and an update racing must not print their lines out of order.
            self.emit(self._line(now, final=False))

    def finish(self) -> None:
        """The closing line, whatever the interval: the totals and the time the whole run took."""
        with self._lock:
            self.emit(self._line(self.clock(), final=True))

    def _line(self, now: float, *, final: bool) -> str:
        state = self._state
        return progress_line(
            self.label,
            state.done,
            state.total,
            now - self._started,
            unit=self.unit,
            details=state.details,
            final=final,
        )

    def ticking(self) -> _Ticker[PlainProgress]:
        return _Ticker(self)


@dataclass
class StageProgress:
    """``PlainProgress`` for a run of named stages whose fraction done is all that is known (the
    model preparation): a line when a stage starts, every ``every`` seconds while it runs, and when
    it ends."""

    label: str
    emit: Callable[[str], None]
    every: float = DEFAULT_PROGRESS_EVERY
    clock: Callable[[], float] = time.monotonic
    _stage: str | None = field(init=False, default=None)
    _fraction: float = field(init=False, default=0.0)
    _started: float = field(init=False, default=0.0)
    _last: float = field(init=False, default=0.0)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def update(self, stage: str, fraction: float) -> None:
        with self._lock:
            lines = []
            now = self.clock()
            if stage != self._stage:
                if self._stage is not None and self._fraction < 1.0:
                    lines.append(self._line(now, done=True))
                self._stage, self._started, self._last = stage, now, now
                self._fraction = fraction
                lines.append(f"{self.label}: {stage} started")
            self._fraction = fraction
            if fraction >= 1.0:
                lines.append(self._line(now, done=True))
            for line in lines:
                self.emit(line)
        self.tick()

    def tick(self) -> None:
        with self._lock:
            now = self.clock()
            if self._stage is None or self._fraction >= 1.0 or now - self._last < self.every:
                return
            self._last = now
            self.emit(self._line(now, done=False))

    def _line(self, now: float, *, done: bool) -> str:
        elapsed = format_duration(now - self._started)
        if done:
            return f"{self.label}: {self._stage} done | took {elapsed}"
        return f"{self.label}: {self._stage} {math.floor(100 * self._fraction)}% | elapsed {elapsed}"

    def ticking(self) -> _Ticker[StageProgress]:
        return _Ticker(self)


class _Tickable(Protocol):
    every: float

    def tick(self) -> None: ...


_P = TypeVar("_P", bound=_Tickable)


class _Ticker(Generic[_P]):
    """A daemon thread calling ``tick`` about every second (or the interval, if shorter)."""

    def __init__(self, progress: _P) -> None:
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="citeline-progress", daemon=True)

    def _run(self) -> None:
        # With no interval (a line per step) an idle run ticks once a second, not in a busy loop.
        wait = min(1.0, self._progress.every) if self._progress.every > 0 else 1.0
        while not self._stop.wait(wait):
            self._progress.tick()

    def __enter__(self) -> _P:
        self._thread.start()
        return self._progress

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def print_plain(console: Console, line: str) -> None:
    """A line as it is: no markup, no highlighting, and no wrapping at rich's assumed 80 columns."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_key_values(console: Console, title: str, rows: Sequence[tuple[str, object]]) -> None:
    """A summary as ``key: value`` lines under its title: every value whole, however long."""
    print_plain(console, f"{title}:")
    for key, value in rows:
        print_plain(console, f"  {key}: {value}")
