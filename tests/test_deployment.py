"""Checks of the deployment files that run without a Docker engine (none runs on this machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_api_waits_for_models_binds_loopback_and_checks_readiness() -> None:
    services = compose()["services"]
    api = services["api"]
    assert api["depends_on"]["models"]["condition"] == "service_completed_successfully"
    assert all(port.startswith("127.0.0.1:") for port in api["ports"])
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert services["models"]["command"] == ["citeline", "models", "prepare"]
    assert services["ingest"]["profiles"] == ["ingest"]


def test_models_and_indexes_live_on_persistent_volumes() -> None:
    data = compose()
    for name in ("api", "models", "ingest"):
        mounts = {m.split(":")[1] for m in data["services"][name]["volumes"]}
        assert mounts == {"/var/lib/citeline/data", "/var/lib/citeline/models"}
    assert set(data["volumes"]) == {"citeline-data", "citeline-models"}


def test_search_profile_runs_searxng_on_loopback_with_the_json_api() -> None:
    services = compose()["services"]
    searxng = services["searxng"]
    assert searxng["profiles"] == ["search"]
    assert searxng["image"].startswith("searxng/searxng:")
    assert searxng["image"].split(":")[1] != "latest"  # pinned: its result format must not change under us
    assert all(port.startswith("127.0.0.1:") for port in searxng["ports"])
    host_path, container_path = searxng["volumes"][0].split(":")[:2]
    assert container_path == "/etc/searxng/settings.yml"
    settings = yaml.safe_load((ROOT / host_path).read_text())
    assert "json" in settings["search"]["formats"]  # off by default in SearxNG; citeline reads JSON
    assert "CITELINE_SEARCH_URL" in services["api"]["environment"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_validates() -> None:
    command = ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"]
    keyed = dict(os.environ, CITELINE_API_KEYS='{"a-key": "read"}')
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=keyed)
    assert completed.returncode == 0, completed.stderr
    # The API listens on all the container's interfaces: it must not start without API keys.
    open_env = {k: v for k, v in os.environ.items() if k != "CITELINE_API_KEYS"}
    refused = subprocess.run(command, capture_output=True, text=True, check=False, env=open_env)
    assert refused.returncode != 0
    assert "CITELINE_API_KEYS" in refused.stderr
