"""citeline's bottom layer: the on-disk index format, the embedder and search.

Nothing here imports ``ingest`` or ``service``.
"""

from indexes._embedder import (
    DEFAULT_EMBEDDING_MODEL,
    Embedder,
    HashEmbedder,
    SentenceTransformerEmbedder,
    Vectors,
)
from indexes._exceptions import (
    CitelineIndexError,
    EmbedderMismatchError,
    EmbedderUnavailableError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidIndexNameError,
)
from indexes._settings import CitelineSettings
from indexes._store import (
    Manifest,
    PassageIndex,
    UpsertResult,
    index_dir,
    list_indexes,
    validate_index_name,
)
from indexes._types import ALIAS_KINDS, AliasKind, PageRecord, PassageRecord, SearchHit

__all__ = [
    "ALIAS_KINDS",
    "DEFAULT_EMBEDDING_MODEL",
    "AliasKind",
    "CitelineIndexError",
    "CitelineSettings",
    "Embedder",
    "EmbedderMismatchError",
    "EmbedderUnavailableError",
    "HashEmbedder",
    "IndexCorruptError",
    "IndexNotFoundError",
    "InvalidIndexNameError",
    "Manifest",
    "PageRecord",
    "PassageIndex",
    "PassageRecord",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "UpsertResult",
    "Vectors",
    "index_dir",
    "list_indexes",
    "validate_index_name",
]
