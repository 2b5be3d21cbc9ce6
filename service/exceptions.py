"""Errors raised by the service layer, and the tree of every citeline error.

Every error citeline raises on purpose derives from :class:`~indexes.CitelineError`, defined at
the bottom layer (``indexes``) so that each layer's errors can share it without importing upward::

    CitelineError
    ├── CitelineIndexError            indexes: the on-disk index and the embedder
    │   ├── InvalidIndexNameError     a name that cannot be an index (also a ValueError)
    │   ├── IndexNotFoundError        no index of that name
    │   ├── IndexCorruptError         files on disk do not agree with each other
    │   ├── EmbedderMismatchError     the index was built with another embedding model
    │   ├── EmbedderUnavailableError  the embedding model cannot be loaded offline
    │   └── VectorStoreBusyError      another process holds the embedded vector store
    ├── IngestError                   ingest: fetching and extracting pages
    │   ├── FetchError                a page could not be fetched
    │   │   ├── OutOfScopeError       a redirect left the crawl's scope
    │   │   ├── TooLargeError         the decoded body passed the size cap
    │   │   └── BlockedAddressError   the SSRF guard refused the address
    │   ├── ExtractionError           a page yielded no main text
    │   ├── MarkupError               a page's markup cannot be parsed (also a ValueError)
    │   └── RayUnavailableError       the Ray engine was asked for without Ray installed
    └── CitelineServiceError          service: answering and serving
        ├── ModelPreparationError     a model could not be assembled, converted or exported
        ├── ModelNotPreparedError     the service was asked to run a model nobody prepared
        ├── GenerationError           the generator failed while answering
        ├── SearchError               the web search provider failed
        ├── BusyError                 the generator's queue is full (503 with Retry-After)
        ├── AccessError               no valid API key, or a key without the scope (401/403)
        │   └── RateLimitedError      a key went over its request rate (429 with Retry-After)
        └── RequestError              a request that cannot be served as asked (its own status)
            ├── NotReadyError         models, index, live fetching or jobs still starting (503)
            ├── LiveRequestError      live-page options that contradict each other (422)
            │   └── UrlRefusedError   a URL the SSRF rules refuse; nothing was fetched (422)
            ├── JobRequestError       an ingest job that must not start (422, also a ValueError)
            └── UnknownJobError       no ingest job of that id (404)

``service.api.problems`` turns each into RFC 9457 problem details, in one place, for plain
responses and for streams alike.
"""

from citeline.indexes import CitelineError


class CitelineServiceError(CitelineError):
    """Base class of every error the service layer raises on purpose."""


CiteLineServiceError = CitelineServiceError
"""The earlier spelling, kept for code written against it."""


class ModelPreparationError(CitelineServiceError):
    """A model could not be assembled, converted or exported."""


class ModelNotPreparedError(CitelineServiceError):
    """The configured generator has not been prepared yet (run ``citeline models prepare``)."""


class GenerationError(CitelineServiceError):
    """The generator failed while producing an answer."""


class SearchError(CitelineServiceError):
    """The search provider did not answer, or answered something that is not a result list."""


class BusyError(CitelineServiceError):
    """Too many requests are already waiting for the generator."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccessError(CitelineServiceError):
    """The request has no valid API key, or its key lacks the scope the endpoint needs."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimitedError(AccessError):
    """The key made more requests than its rate allows."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class RequestError(CitelineServiceError):
    """A request that cannot be served as asked; ``status`` and ``title`` are what the client reads."""

    status = 422
    title = "Invalid request"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        if title is not None:
            self.title = title


class NotReadyError(RequestError):
    """What the request needs is still starting (or failed to start): 503 with Retry-After."""

    status = 503
    title = "Not ready"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LiveRequestError(RequestError):
    """The request's live-page options cannot be served as asked (422)."""

    title = "Invalid live-page request"


class UrlRefusedError(LiveRequestError):
    """A URL of the request is one the SSRF rules refuse: nothing of the request was fetched."""

    title = "URL refused"


class JobRequestError(RequestError, ValueError):
    """A job request that must not start: the message names the field (``seeds[2]: ...``)."""

    title = "Invalid ingest job"


class UnknownJobError(RequestError):
    """No ingest job has that id."""

    status = 404
    title = "Unknown job"
