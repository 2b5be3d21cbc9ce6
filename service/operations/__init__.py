"""Running the service over time: which indexes are open, and the ingest jobs it drives.

- ``registry``: open indexes by name, leased per request, swapped when a rebuild replaces one;
- ``jobs``: ``citeline ingest`` children started over HTTP from a validated spec.
"""

from citeline.service.exceptions import JobRequestError
from citeline.service.operations.jobs import (
    IngestJobRequest,
    Job,
    JobManager,
    JobSpec,
    load_spec,
    validate_request,
)
from citeline.service.operations.registry import IndexRegistry, Lease

__all__ = [
    "IndexRegistry",
    "IngestJobRequest",
    "Job",
    "JobManager",
    "JobRequestError",
    "JobSpec",
    "Lease",
    "load_spec",
    "validate_request",
]
