"""Errors raised while ingesting pages.

::

    CitelineError               the root of every citeline error (tree: service.exceptions)
    └── IngestError             base of everything below
        ├── FetchError          a page could not be fetched (network, status, type, size)
        │   ├── OutOfScopeError a redirect left the crawl's scope
        │   ├── TooLargeError   the decoded body passed the size cap
        │   └── BlockedAddressError  the SSRF guard refused the address (``safety``)
        ├── ExtractionError     a page yielded no main text
        ├── MarkupError         the markup cannot be parsed at all (also a ValueError)
        └── RayUnavailableError the Ray engine without Ray installed (``ray_engine``)

A failing page never stops a run: the pipeline records the error in the run summary, counted by
its ``kind``, and moves on.
"""

from typing import Literal

from citeline.indexes import CitelineError

SkipKind = Literal["error", "robots", "opt_out", "scope", "size", "type", "blocked", "gone"]
"""Why a page was not kept: ``robots``, ``opt_out`` (noindex/noai/TDM reservation), ``scope``,
``size``, ``type``, ``blocked`` (a refused address or scheme), ``gone`` (404/410) or ``error``."""


class IngestError(CitelineError):
    """Base class of every error the ingest layer raises on purpose."""


class FetchError(IngestError):
    """A page could not be fetched."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, kind: SkipKind = "error") -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status
        self.kind: SkipKind = kind


class OutOfScopeError(FetchError):
    """A redirect led outside the crawl's scope."""


class TooLargeError(FetchError):
    """The decoded body was larger than the configured cap."""


class ExtractionError(IngestError):
    """The extractor found no main text in a page."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class MarkupError(IngestError, ValueError):
    """The page's markup could not be parsed at all (an empty document, or bytes lxml rejects)."""
