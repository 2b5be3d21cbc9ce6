"""What one ingest run does beyond what :class:`~ingest.IngestSettings` configure.

One frozen :class:`IngestOptions` travels whole from the command line through :func:`ingest.run_ingest`
(and the Ray engine's :func:`~ingest.ray_engine.run_ray_ingest`) to :class:`ingest.IngestPipeline`,
instead of a keyword argument per knob at every layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class UrlMap:
    """Rewrites the fetched URL into the URL that citations link to (mirror -> public site)."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> UrlMap:
        """Each spec is ``FETCHED_PREFIX=PUBLIC_PREFIX``."""
        rules = []
        for spec in specs:
            source, sep, target = spec.partition("=")
            if not sep or not source or not target:
                raise ValueError(f"bad URL mapping {spec!r}: expected FETCHED_PREFIX=PUBLIC_PREFIX")
            rules.append((source, target))
        return cls(tuple(rules))

    def public(self, url: str) -> str:
        for source, target in self.rules:
            if url.startswith(source):
                return target + url[len(source) :]
        return url


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """The knobs of one ingest run; the defaults are those of ``citeline ingest`` without options."""

    index_name: str | None = None
    """The index to create or update; None: the settings' ``index``."""
    max_pages: int | None = None
    """Pages fetched at most. None: the settings' ``max_pages`` for a crawl (a site can be endless),
    no cap for a directory or WARC files (already a finite list)."""
    max_depth: int = 10
    """Links followed away from a seed at most."""
    url_map: UrlMap = field(default_factory=UrlMap)
    """Rewrites fetched URLs into the URLs citations link to."""
    keep_gone: bool = False
    """A stored page that now answers 404/410 or opts out is kept and marked gone rather than removed."""
    resume: bool = True
    """Checkpoint the job in a journal, and resume an interrupted run of the same job."""
    record_warc: Path | None = None
    """Also write every fetched page to this WARC file (``.warc.gz``: gzip-compressed per record)."""
    near_duplicates: bool = True
    """Record a page within SimHash distance of another as that page's alias (exact duplicates always are)."""
