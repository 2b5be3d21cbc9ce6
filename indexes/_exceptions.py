"""Errors raised by the index layer, under the one root every citeline error derives from.

::

    CitelineError                   root of every error citeline raises on purpose (the whole tree: service.exceptions)
    └── CitelineIndexError          base of every error of the index layer
        ├── InvalidIndexNameError   a name that cannot be an index (also a ValueError)
        ├── IndexNotFoundError      no index of that name in the data directory
        ├── IndexCorruptError       files on disk do not agree with each other
        ├── EmbedderMismatchError   the index was built with another embedding model or dimension
        ├── EmbedderUnavailableError the embedding model cannot be loaded offline
        └── VectorStoreBusyError    embedded Qdrant folder held by another process (also a RuntimeError)
"""


class CitelineError(Exception):
    """Root of every error citeline raises on purpose; the upper layers' errors derive from it too."""


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


class VectorStoreBusyError(CitelineIndexError, RuntimeError):
    """The index's embedded Qdrant folder is held by another client (another process): use a Qdrant server."""
