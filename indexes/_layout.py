"""Where indexes live: ``<data_dir>/indexes/<name>/`` and the files in it.

::

    passages.sqlite   source of truth: pages, passages and their vectors (WAL mode), see _passages
    vectors.faiss     FAISS inner-product index, ids = passage ids (derived; kind by size, see _vectors)
    manifest.json     embedding model, dimension, vector backend, counts and the store generation
    qdrant/           embedded Qdrant collection (derived), only for the ``qdrant`` backend without a server
"""

from __future__ import annotations

import re
from pathlib import Path

from citeline.indexes._exceptions import InvalidIndexNameError

INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DB_FILE = "passages.sqlite"
FAISS_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"
QDRANT_DIR = "qdrant"


def validate_index_name(name: str) -> str:
    if not INDEX_NAME.match(name):
        raise InvalidIndexNameError(
            f"invalid index name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def index_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "indexes" / validate_index_name(name)


def list_indexes(data_dir: Path) -> list[str]:
    root = data_dir / "indexes"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / DB_FILE).is_file())
