"""Errors raised by the index layer.

::

    CitelineError               the root of every citeline error (tree: service.exceptions)
    └── CitelineIndexError      base of everything below
    ├── InvalidIndexNameError   a name that cannot be an index (also a ValueError)
    ├── IndexNotFoundError      no index of that name in the data directory
    ├── IndexCorruptError       files on disk do not agree with each other
    ├── EmbedderMismatchError   the index was built with another embedding model or dimension
    └── EmbedderUnavailableError the embedding model cannot be loaded offline
"""


class CitelineError(Exception):
    """The root of every error citeline raises on purpose (the whole tree: ``service.exceptions``)."""


class CitelineIndexError(CitelineError):
    """Base class of every error the index layer raises on purpose."""


class InvalidIndexNameError(CitelineIndexError, ValueError):
    """The name is not a valid index name."""


class IndexNotFoundError(CitelineIndexError):
    """No index of that name exists in the data directory."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no index named {name!r}: ingest some pages into it first")
        self.name = name


class IndexCorruptError(CitelineIndexError):
    """The files of an index do not agree with each other and cannot be repaired."""


class EmbedderMismatchError(CitelineIndexError):
    """An index was opened with an embedder other than the one that built it."""


class EmbedderUnavailableError(CitelineIndexError):
    """The embedding model cannot be loaded (missing wheel or files)."""
