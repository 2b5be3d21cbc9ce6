"""Where citeline keeps its data, shared by every layer."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from citeline.indexes._embedder import EmbeddingBackend
from citeline.indexes._vectorstore import VectorBackend


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "citeline"


def _default_models_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "citeline" / "models"


def config_file() -> Path:
    """The TOML config file: ``$CITELINE_CONFIG`` or ``./citeline.toml``."""
    return Path(os.environ.get("CITELINE_CONFIG", "citeline.toml"))


class CitelineSettings(BaseSettings):
    """Settings read from ``CITELINE_*`` environment variables, then the TOML config file.

    Each layer extends this class with its own fields; a field set in the environment wins over
    the same key in the file.
    """

    model_config = SettingsConfigDict(env_prefix="CITELINE_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Holds the indexes (``<data_dir>/indexes/<name>/``) and ingest job state."""
    models_dir: Path = Field(default_factory=_default_models_dir)
    """Holds prepared models; shared by every data directory on the machine."""
    index: str = "default"
    """Index used when a command or request names none."""
    embedding_model: str = "all-MiniLM-L6-v2"
    """The wheel-shipped all-MiniLM-L6-v2, or a local sentence-transformers directory."""
    embedding_backend: EmbeddingBackend = "openvino"
    """What runs the embedding model: ``openvino`` (fp32 IR exported once under models_dir; same
    vectors as torch at 1.3-1.6x its passages/s, see bench/embedding.py), ``torch``
    (sentence-transformers fp32) or ``openvino-int8`` (~3.2x, but it changes the top-5 of 15-25% of
    queries, so it gets its own model name and cannot search indexes built by the other two)."""
    embed_batch_size: int = 32
    """Texts per embedding batch."""
    vector_backend: VectorBackend = "faiss"
    """Where an index's vectors are searched: ``faiss`` (files in the index folder, Flat or IVF-SQ8
    by size) or ``qdrant`` (the ``qdrant`` extra; one collection per index, named ``<index>-<32 hex>``
    when a writer first opens it and kept in the index's ``meta``, so two data directories never share
    one; embedded under the index folder unless :attr:`qdrant_url` is set). The SQLite store stays the
    source of truth."""
    qdrant_url: str | None = None
    """A Qdrant server (``http://127.0.0.1:6333``) for the ``qdrant`` backend; None runs it embedded
    (one process per index at a time, exact scans: for tests and small indexes)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del dotenv_settings, file_secret_settings
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file()))
