"""Errors raised by the service layer.

::

    CiteLineServiceError
    ├── ModelPreparationError   a model could not be assembled, converted or exported
    ├── ModelNotPreparedError   the service was asked to run a model nobody prepared
    └── GenerationError         the generator failed while answering
"""


class CiteLineServiceError(Exception):
    """Base class of every error the service layer raises on purpose."""


class ModelPreparationError(CiteLineServiceError):
    """A model could not be assembled, converted or exported."""


class ModelNotPreparedError(CiteLineServiceError):
    """The configured generator has not been prepared yet (run ``citeline models prepare``)."""


class GenerationError(CiteLineServiceError):
    """The generator failed while producing an answer."""
