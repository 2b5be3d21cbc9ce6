"""Ingest jobs started over HTTP: each one a ``citeline ingest`` child process, tracked on disk.

A child process keeps the embedder's CPU work and memory out of the server, and it can be stopped
cleanly: ``DELETE`` sends SIGTERM, and the job's checkpoint (``ingest.journal``) makes a later run
of the same job resume rather than start over. A job's record (``<data_dir>/jobs/<id>.job.json``) is
written on every change of state, so jobs survive a restart of the service: a job that was running
when the service died is started again, and resumes from its checkpoint; if it cannot be, it is
marked failed with the reason. None is ever silently lost; a record this version cannot read (written
by another one, or damaged) is skipped with the reason logged, and left on disk.

No request string ever becomes a command-line argument of the child. The request is validated here
(every URL by the crawler's own rules, the index name, the patterns, every list bounded), then
written with the server's own settings into ``<data_dir>/jobs/<id>.spec.json``; the child is started
as ``citeline ingest --job-spec PATH`` and reads nothing else. What a caller cannot choose: the SSRF
allow-list (the server's ``allow_hosts``), the data directory, and the URL mapping that decides
which URL citations claim a page came from (the server's ``ingest_url_maps``); nor any option that
reads local files (``--dir``, ``--warc``), writes them (``--record-warc``) or picks an engine.

While a job runs, questions keep being answered: every page is committed in its own transaction,
so the service sees the index grow page by page and never a half-written page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import structlog

from citeline.indexes import InvalidIndexNameError, atomic_write, validate_index_name
from citeline.ingest import BlockedAddressError, canonical
from citeline.ingest.safety import AddressPolicy, check_url
from citeline.service.exceptions import JobRequestError

log = structlog.get_logger("citeline.jobs")

JobState = Literal["running", "succeeded", "failed", "cancelled"]

MAX_URLS = 100
"""Seeds a job may name at most (sitemaps and feeds: ``MAX_LISTINGS`` each)."""
MAX_LISTINGS = 20
MAX_PATTERNS = 50
"""``allow`` and ``deny`` patterns each, at most."""
MAX_URL_CHARS = 2048
MAX_PATTERN_CHARS = 512
MAX_JOB_PAGES = 100_000
MAX_JOB_DEPTH = 50
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS)]
_Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PATTERN_CHARS)]


class IngestJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What ``POST /v1/ingest`` accepts: what to crawl, and how far. Nothing that reads or writes
    local files, opens private addresses, or rewrites the URLs citations show: those are the
    server's settings."""

    seeds: Annotated[
        list[_Url], msgspec.Meta(max_length=MAX_URLS, description="http(s) URLs to crawl from (public addresses).")
    ] = []
    index: Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="Index to ingest into.")] | None = None
    sitemaps: Annotated[list[_Url], msgspec.Meta(max_length=MAX_LISTINGS, description="Sitemap URLs.")] = []
    feeds: Annotated[list[_Url], msgspec.Meta(max_length=MAX_LISTINGS, description="RSS/Atom feed URLs.")] = []
    max_pages: Annotated[int, msgspec.Meta(ge=1, le=MAX_JOB_PAGES)] | None = None
    max_depth: Annotated[int, msgspec.Meta(ge=0, le=MAX_JOB_DEPTH)] = 10
    scope: Literal["prefix", "host"] = "prefix"
    allow: Annotated[
        list[_Pattern], msgspec.Meta(max_length=MAX_PATTERNS, description="Follow only links matching one of these.")
    ] = []
    deny: Annotated[
        list[_Pattern], msgspec.Meta(max_length=MAX_PATTERNS, description="Never follow links matching these.")
    ] = []
    keep_gone: bool = False


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Everything a job's child process is told (``<data_dir>/jobs/<id>.spec.json``): the caller's
    validated ``request`` and, apart from it, the server's own settings."""

    request: IngestJobRequest
    data_dir: str
    allow_hosts: list[str]
    """The server's ingest allow-list, never one from a request."""
    url_maps: list[str]
    """The server's ``ingest_url_maps``."""


def _printable(name: str, value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in value):
        raise JobRequestError(f"{name}: must not contain spaces or control characters")


def _check_job_url(name: str, url: str, policy: AddressPolicy) -> None:
    """The crawler's rules for a URL it is handed (http/https only, no credentials, no private or
    special address unless the server's allow-list opens it), checked before anything starts."""
    _printable(name, url)
    try:
        check_url(url, policy)
        check_url(canonical(url), policy)
    except BlockedAddressError as exc:
        raise JobRequestError(f"{name}: {exc.reason}") from exc
    except ValueError as exc:  # urllib's own complaints (``http://[x``) while normalising
        raise JobRequestError(f"{name}: not a URL ({exc})") from exc


def validate_request(request: IngestJobRequest, policy: AddressPolicy) -> None:
    """Raise :class:`JobRequestError` naming the first field a job must not be started with."""
    if not (request.seeds or request.sitemaps or request.feeds):
        raise JobRequestError("nothing to ingest: give seeds, sitemaps or feeds")
    for name, urls in (("seeds", request.seeds), ("sitemaps", request.sitemaps), ("feeds", request.feeds)):
        for position, url in enumerate(urls):
            _check_job_url(f"{name}[{position}]", url, policy)
    if request.index is not None:
        try:
            validate_index_name(request.index)
        except InvalidIndexNameError as exc:
            raise JobRequestError(f"index: {exc}") from exc
    for name, patterns in (("allow", request.allow), ("deny", request.deny)):
        for position, pattern in enumerate(patterns):
            _printable(f"{name}[{position}]", pattern)
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError, ValueError, FutureWarning) as exc:
                raise JobRequestError(f"{name}[{position}]: not a regular expression ({exc})") from exc


def load_spec(path: Path) -> JobSpec:
    """Read and check a job spec (what ``citeline ingest --job-spec`` runs); ``ValueError`` if it
    is not one, or asks for what a job may not do."""
    try:
        spec = msgspec.json.decode(path.read_bytes(), type=JobSpec)
    except (OSError, msgspec.DecodeError) as exc:
        raise ValueError(f"cannot read job spec {path}: {exc}") from exc
    validate_request(spec.request, AddressPolicy.from_strings(spec.allow_hosts))
    return spec


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


def _load_job(path: Path) -> Job:
    """A job record as this version writes it, or ``ValueError`` saying why it is not one."""
    try:
        job = msgspec.json.decode(path.read_bytes(), type=Job)
    except (OSError, msgspec.DecodeError) as exc:
        raise ValueError(str(exc)) from exc
    # The id names the job's files: one that is not this file's own could point anywhere.
    if not _JOB_ID.fullmatch(job.id) or path.name != f"{job.id}.job.json":
        raise ValueError(f"its id {job.id!r} does not match its file name")
    return job


class JobManager:
    """Starts, watches, cancels and recovers ingest jobs. Thread-safe.

    ``allow_hosts`` (the server's ingest allow-list) and ``url_maps`` (``FETCHED=PUBLIC`` rules)
    are the server's settings, handed to every job."""

    def __init__(
        self,
        data_dir: Path,
        *,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        allow_hosts: Sequence[str] = (),
        url_maps: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.directory = data_dir / "jobs"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._command = list(command or [sys.executable, "-m", "citeline"])
        self._env = env
        self._allow_hosts = [entry.strip() for entry in allow_hosts if entry.strip()]
        self._policy = AddressPolicy.from_strings(self._allow_hosts)
        self._url_maps = list(url_maps)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.on_finish: Callable[[Job, Any], None] | None = None
        """Told about every job that ends, with its summary (None when it wrote none)."""
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        for path in sorted(self.directory.glob("*.job.json")):
            try:
                job = _load_job(path)
            except ValueError as exc:
                log.warning("job record skipped", file=path.name, reason=str(exc))
                continue
            self._jobs[job.id] = job

    def recover(self) -> list[str]:
        """Restart the jobs a previous service left running (they resume from their checkpoint)."""
        restarted = []
        for job in list(self._jobs.values()):
            if job.state != "running":
                continue
            if job.pid is not None and _runs_job(job.pid, self.directory / f"{job.id}.progress.json"):
                # Its process outlived the service: stop it, so exactly one process works on the job.
                _terminate(job.pid)
            job.restarts += 1
            try:
                self._spawn(job, self._spec(job))
                restarted.append(job.id)
            except (OSError, ValueError) as exc:
                log.warning("job not restarted", job=job.id, reason=str(exc))
                self._finish(job, "failed", error=f"could not restart after a service restart: {exc}")
        return restarted

    def start(self, request: IngestJobRequest) -> Job:
        """Validate ``request`` (:class:`JobRequestError`: nothing is written or started) and start it."""
        validate_request(request, self._policy)
        job = Job(id=uuid.uuid4().hex[:12], request=msgspec.to_builtins(request))
        with self._lock:
            self._jobs[job.id] = job
        try:
            self._spawn(job, self._spec(job))
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

    def _spec(self, job: Job) -> JobSpec:
        """The job's spec under today's rules: a record from before a rule existed is checked again."""
        try:
            request = msgspec.convert(job.request, IngestJobRequest)
        except msgspec.ValidationError as exc:
            raise JobRequestError(f"its request is not valid here: {exc}") from exc
        validate_request(request, self._policy)
        return JobSpec(
            request=request, data_dir=str(self.data_dir), allow_hosts=self._allow_hosts, url_maps=self._url_maps
        )

    def _spawn(self, job: Job, spec: JobSpec) -> None:
        spec_path = self.directory / f"{job.id}.spec.json"
        atomic_write(spec_path, msgspec.json.encode(spec))
        # Every argument is the server's own (a fixed word or a path it chose): the request reaches
        # the child only through the spec file, so no request value can be read as an option.
        args = [
            "ingest",
            "--job-spec", str(spec_path),
            "--summary-json", str(self.directory / f"{job.id}.summary.json"),
            "--progress-json", str(self.directory / f"{job.id}.progress.json"),
        ]  # fmt: skip
        env = dict(self._env if self._env is not None else os.environ, HF_HUB_OFFLINE="1")
        with (self.directory / f"{job.id}.log").open("ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 - a list of the server's own arguments, no shell
                [*self._command, *args], stdout=log_file, stderr=log_file, env=env, start_new_session=True
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
        with self._lock:
            atomic_write(path, json.dumps(asdict(job)).encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _runs_job(pid: int, progress: Path) -> bool:
    """Whether ``pid`` is alive and is this job's child (its command line names the job's progress
    file): after a reboot the recorded pid may belong to any process, which must be left alone."""
    if not _alive(pid):
        return False
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(progress)) in command_line


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
