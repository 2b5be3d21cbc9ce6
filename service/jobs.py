"""Ingest jobs started over HTTP: each one a ``citeline ingest`` child process, tracked on disk.

A child process keeps the embedder's CPU work and memory out of the server, and it can be stopped
cleanly: ``DELETE`` sends SIGTERM, and the job's checkpoint (``ingest.journal``) makes a later run
of the same job resume rather than start over. A job's record (``<data_dir>/jobs/<id>.json``) is
written on every change of state, so jobs survive a restart of the service: a job that was running
when the service died is started again, and resumes from its checkpoint; if it cannot be, it is
marked failed with the reason. None is ever silently lost.

While a job runs, questions keep being answered: every page is committed in its own transaction,
so the service sees the index grow page by page and never a half-written page.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

JobState = Literal["running", "succeeded", "failed", "cancelled"]


class IngestJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What ``POST /v1/ingest`` accepts: the options of ``citeline ingest``."""

    seeds: list[str] = []
    index: str | None = None
    sitemaps: list[str] = []
    feeds: list[str] = []
    max_pages: int | None = None
    max_depth: int = 10
    scope: Literal["prefix", "host"] = "prefix"
    allow: list[str] = []
    deny: list[str] = []
    map_url: list[str] = []
    keep_gone: bool = False

    def arguments(self) -> list[str]:
        args: list[str] = ["ingest", *self.seeds, "--max-depth", str(self.max_depth), "--scope", self.scope]
        for flag, values in (("--sitemap", self.sitemaps), ("--feed", self.feeds), ("--allow", self.allow),
                             ("--deny", self.deny), ("--map-url", self.map_url)):  # fmt: skip
            for value in values:
                args += [flag, value]
        if self.index:
            args += ["--index", self.index]
        if self.max_pages:
            args += ["--max-pages", str(self.max_pages)]
        if self.keep_gone:
            args.append("--keep-gone")
        return args


@dataclass(slots=True)
class Job:
    id: str
    request: dict[str, Any]
    state: JobState = "running"
    pid: int | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    restarts: int = 0
    error: str | None = None
    exit_code: int | None = None

    def public(self, directory: Path) -> dict[str, Any]:
        """What ``GET /v1/ingest/{id}`` shows: state, live progress, and the summary once done."""
        out = asdict(self)
        out.pop("pid")
        progress = directory / f"{self.id}.progress.json"
        summary = directory / f"{self.id}.summary.json"
        out["progress"] = _read_json(progress)
        out["summary"] = _read_json(summary)
        return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class JobManager:
    """Starts, watches, cancels and recovers ingest jobs. Thread-safe."""

    def __init__(
        self, data_dir: Path, *, command: Sequence[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.directory = data_dir / "jobs"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._command = list(command or [sys.executable, "-m", "service.cli"])
        self._env = env
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.on_finish: Callable[[Job, Any], None] | None = None
        """Told about every job that ends, with its summary (None when it wrote none)."""
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        for path in sorted(self.directory.glob("*.job.json")):
            data = _read_json(path)
            if isinstance(data, dict):
                job = Job(**data)
                self._jobs[job.id] = job

    def recover(self) -> list[str]:
        """Restart the jobs a previous service left running (they resume from their checkpoint)."""
        restarted = []
        for job in list(self._jobs.values()):
            if job.state != "running":
                continue
            if job.pid is not None and _alive(job.pid):
                # Its process outlived the service: stop it, so exactly one process works on the job.
                _terminate(job.pid)
            job.restarts += 1
            try:
                self._spawn(job)
                restarted.append(job.id)
            except OSError as exc:
                self._finish(job, "failed", error=f"could not restart after a service restart: {exc}")
        return restarted

    def start(self, request: IngestJobRequest) -> Job:
        if not (request.seeds or request.sitemaps or request.feeds):
            raise ValueError("nothing to ingest: give seeds, sitemaps or feeds")
        if any(not arg or any(ord(c) < 32 for c in arg) for arg in request.arguments()[1:]):
            raise ValueError("options must be non-empty and free of control characters")
        job = Job(id=uuid.uuid4().hex[:12], request=msgspec.to_builtins(request))
        with self._lock:
            self._jobs[job.id] = job
        try:
            self._spawn(job)
        except (OSError, ValueError) as exc:
            self._finish(job, "failed", error=f"could not start: {exc}")
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def cancel(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            process = self._processes.get(job_id)
        if job is None:
            return None
        if job.state == "running":
            job.state = "cancelled"  # before the signal, so the watcher records it as such
            self._save(job)
            if process is not None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        return job

    def running(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state == "running")

    def _spawn(self, job: Job) -> None:
        request = IngestJobRequest(**job.request)
        args = [
            *request.arguments(),
            "--summary-json", str(self.directory / f"{job.id}.summary.json"),
            "--progress-json", str(self.directory / f"{job.id}.progress.json"),
        ]  # fmt: skip
        env = dict(self._env if self._env is not None else os.environ, HF_HUB_OFFLINE="1")
        with (self.directory / f"{job.id}.log").open("ab") as log:
            # The arguments come from a validated request and are passed as a list: no shell is involved.
            process = subprocess.Popen(  # noqa: S603
                [*self._command, *args], stdout=log, stderr=log, env=env, start_new_session=True
            )
        with self._lock:
            job.state, job.pid, job.error, job.exit_code, job.finished_at = "running", process.pid, None, None, None
            self._processes[job.id] = process
        self._save(job)
        threading.Thread(target=self._watch, args=(job, process), name=f"ingest-{job.id}", daemon=True).start()

    def _watch(self, job: Job, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        if job.state == "cancelled":
            self._finish(job, "cancelled", exit_code=code)
        elif code == 0:
            self._finish(job, "succeeded", exit_code=code)
        else:
            tail = (self.directory / f"{job.id}.log").read_bytes()[-600:].decode("utf-8", "replace").strip()
            self._finish(job, "failed", exit_code=code, error=tail.splitlines()[-1] if tail else f"exit code {code}")

    def _finish(self, job: Job, state: JobState, *, exit_code: int | None = None, error: str | None = None) -> None:
        with self._lock:
            job.state, job.exit_code, job.error, job.finished_at = state, exit_code, error, time.time()
            self._processes.pop(job.id, None)
        self._save(job)
        if self.on_finish is not None:
            self.on_finish(job, _read_json(self.directory / f"{job.id}.summary.json"))

    def _save(self, job: Job) -> None:
        path = self.directory / f"{job.id}.job.json"
        tmp = path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(json.dumps(asdict(job)))
        tmp.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    for _ in range(100):
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
