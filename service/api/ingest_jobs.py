"""``/v1/ingest``: start, list, read and cancel ingest jobs."""

import asyncio
import sys
from pathlib import Path
from typing import Any

from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from citeline.service.api import metrics
from citeline.service.api.resources import (
    Resources,
    requires,
)
from citeline.service.exceptions import JobRequestError, NotReadyError, UnknownJobError
from citeline.service.operations import IngestJobRequest, JobManager


def count_job(job: Any, summary: Any) -> None:
    metrics.INGEST_JOBS.labels(job.state).inc()
    if isinstance(summary, dict):
        for result in ("pages_new", "pages_updated", "pages_unchanged", "pages_removed", "duplicates", "pages_failed"):
            metrics.INGEST_PAGES.labels(result.removeprefix("pages_")).inc(int(summary.get(result) or 0))


def citeline_command() -> list[str]:
    script = Path(sys.executable).parent / "citeline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "citeline"]


def job_manager(resources: Resources) -> JobManager:
    if resources.jobs is None:
        raise NotReadyError("the job runner is starting")
    return resources.jobs


@post("/v1/ingest", summary="Start an ingest job (the options of `citeline ingest`)", status_code=202,
      guards=[requires("ingest")])  # fmt: skip
async def start_ingest(data: JSONBody[IngestJobRequest], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = job_manager(resources)
    try:
        job = await asyncio.to_thread(jobs.start, data)
    except ValueError as exc:
        raise JobRequestError(str(exc)) from exc
    metrics.INGEST_JOBS.labels("started").inc()
    return job.public(jobs.directory)


@get("/v1/ingest", summary="Ingest jobs, newest first", guards=[requires("ingest")])
async def list_ingest(resources: NamedDependency[Resources]) -> list[dict[str, Any]]:
    jobs = job_manager(resources)
    return [job.public(jobs.directory) for job in jobs.list()]


@get("/v1/ingest/{job_id:str}", summary="An ingest job's state, progress and summary", guards=[requires("ingest")])
async def get_ingest(job_id: FromPath[str], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = job_manager(resources)
    job = jobs.get(job_id)
    if job is None:
        raise UnknownJobError(job_id)
    return job.public(jobs.directory)


@delete("/v1/ingest/{job_id:str}", summary="Cancel an ingest job (its checkpoint lets a rerun resume)",
        status_code=200, guards=[requires("ingest")])  # fmt: skip
async def cancel_ingest(job_id: FromPath[str], resources: NamedDependency[Resources]) -> dict[str, Any]:
    jobs = job_manager(resources)
    job = await asyncio.to_thread(jobs.cancel, job_id)
    if job is None:
        raise UnknownJobError(job_id)
    return job.public(jobs.directory)
