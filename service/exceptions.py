"""Errors raised by the service layer.

::

    CiteLineServiceError
    ├── ModelPreparationError   a model could not be assembled, converted or exported
    ├── ModelNotPreparedError   the service was asked to run a model nobody prepared
    ├── GenerationError         the generator failed while answering
    ├── BusyError               the generator's queue is full (503 with Retry-After)
    └── AccessError             a request lacks a valid API key or scope (401/403)
        └── RateLimitedError    a key went over its request rate (429 with Retry-After)
"""


class CiteLineServiceError(Exception):
    """Base class of every error the service layer raises on purpose."""


class ModelPreparationError(CiteLineServiceError):
    """A model could not be assembled, converted or exported."""


class ModelNotPreparedError(CiteLineServiceError):
    """The configured generator has not been prepared yet (run ``citeline models prepare``)."""


class GenerationError(CiteLineServiceError):
    """The generator failed while producing an answer."""


class BusyError(CiteLineServiceError):
    """Too many requests are already waiting for the generator."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccessError(CiteLineServiceError):
    """The request has no valid API key, or its key lacks the scope the endpoint needs."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimitedError(AccessError):
    """The key made more requests than its rate allows."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after
