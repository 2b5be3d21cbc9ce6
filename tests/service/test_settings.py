from __future__ import annotations

from pathlib import Path

import pytest

from citeline.service.settings import ServiceSettings


def test_config_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "citeline.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nindex = "from-file"\nport = 9001\n')
    monkeypatch.setenv("CITELINE_CONFIG", str(config))
    monkeypatch.setenv("CITELINE_PORT", "9100")
    settings = ServiceSettings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.index == "from-file"
    assert settings.port == 9100, "the environment wins over the file"


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITELINE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("CITELINE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = ServiceSettings()
    assert settings.data_dir == tmp_path / "xdg" / "citeline"
    assert settings.host == "127.0.0.1"
    assert settings.generator_dir() == settings.models_dir / settings.generator_model
