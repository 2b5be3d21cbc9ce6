"""``manifest.json``: what an index is (its embedder) and what its derived vectors match.

Written after the vectors by :meth:`~indexes.PassageIndex.flush`; a reader trusts the vector files
only when the generation recorded here is the store's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citeline.indexes._files import atomic_write
from citeline.indexes._layout import MANIFEST_FILE
from citeline.indexes._vectors import FLAT_FACTORY
from citeline.indexes._vectorstore import VectorBackend

FORMAT_VERSION = 1
"""The file layout. Later schema additions are migrated in place and do not change it."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an index is: the embedder that built it and what it holds."""

    name: str
    embedding_model: str
    dimension: int
    pages: int
    passages: int
    generation: int
    """Incremented on every committed change to the store."""
    metric: str = "inner_product"
    faiss_index: str = FLAT_FACTORY
    """The vector index kind as a FAISS factory string (:class:`~indexes.VectorIndexSpec`)."""
    format_version: int = FORMAT_VERSION
    updated_at: str = ""
    vector_backend: VectorBackend = "faiss"
    """Where the vectors matching ``generation`` live (``faiss`` or ``qdrant``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "embedding_model": self.embedding_model,
            "dimension": self.dimension,
            "metric": self.metric,
            "faiss_index": self.faiss_index,
            "vector_backend": self.vector_backend,
            "pages": self.pages,
            "passages": self.passages,
            "generation": self.generation,
            "updated_at": self.updated_at,
        }


def write_manifest(index_path: Path, manifest: Manifest) -> None:
    atomic_write(index_path / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=2).encode())


def read_manifest(index_path: Path) -> dict[str, Any]:
    """The recorded manifest as JSON; empty when missing or unreadable (the vectors are then rebuilt)."""
    try:
        recorded = json.loads((index_path / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}
