"""The on-disk contract between model preparation and serving: where a prepared generator lives
and the marker that says it is complete (preparation writes it last; serving only reads it)."""

from __future__ import annotations

import json
from pathlib import Path

QWEN_MODEL_ID = "qwen2.5-coder-1.5b-instruct-ov-int4"
#: Bump when the recipe changes, so that caches built by an older recipe are rebuilt.
RECIPE_VERSION = 2
READY_MARKER = "READY.json"


def prepared_model_dir(models_dir: Path, model_id: str = QWEN_MODEL_ID) -> Path:
    return models_dir / model_id


def is_ready(model_dir: Path) -> bool:
    marker = model_dir / READY_MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return bool(info.get("recipe_version") == RECIPE_VERSION)
