"""What an installed citeline claims: one ``citeline`` package, layered, and nothing at the top of
site-packages named ``service``, ``ingest`` or ``indexes``."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("indexes", "ingest", "service")
"""Bottom to top: a layer may import the ones before it, never one after it."""
SOURCE_FOLDERS = ("bench", "citeline", "eval", "indexes", "ingest", "scripts", "service", "tests")


def python_files(folder: str) -> Iterator[Path]:
    # The real folders only: citeline/service and the like are links to them.
    for path in sorted((ROOT / folder).rglob("*.py")):
        if not any(part.is_symlink() for part in [path, *path.parents] if ROOT in part.parents):
            yield path


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module name ``path`` imports, with its line (relative imports stay in a layer)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module == "citeline":
                for alias in node.names:
                    yield node.lineno, f"citeline.{alias.name}"


def test_the_citeline_folder_links_to_the_three_layers() -> None:
    for layer in LAYERS:
        link = ROOT / "citeline" / layer
        assert link.is_symlink(), f"{link} should link to ../{layer}"
        assert link.readlink() == Path("..", layer)
        assert (link / "__init__.py").is_file()


def test_nothing_imports_the_layers_by_their_top_level_names() -> None:
    stray = [
        f"{path.relative_to(ROOT)}:{line}: import {name}"
        for folder in SOURCE_FOLDERS
        if (ROOT / folder).is_dir()
        for path in python_files(folder)
        for line, name in imported_modules(path)
        if name.split(".")[0] in LAYERS
    ]
    # Importing `service.x` next to `citeline.service.x` would load the module twice, with two copies
    # of its state; an installed citeline has no `service` to import at all.
    assert stray == []


def test_nothing_imports_upward() -> None:
    upward = []
    for position, layer in enumerate(LAYERS):
        higher = {f"citeline.{name}" for name in LAYERS[position + 1 :]}
        for path in python_files(layer):
            for line, name in imported_modules(path):
                if any(name == module or name.startswith(f"{module}.") for module in higher):
                    upward.append(f"{path.relative_to(ROOT)}:{line}: import {name}")
    assert upward == []


def docker_copied_paths() -> list[str]:
    """What the Dockerfile copies into /app before its `pip install .`."""
    paths: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("RUN pip install ."):
            return paths
        if line.startswith("COPY "):
            paths.extend(line.split()[1:-1])
    raise AssertionError("the Dockerfile never runs `pip install .`")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from what the Dockerfile copies, as its `pip install .` builds it (isolated, with the
    # setuptools pyproject.toml asks for): so the image gets the whole package too, and the build
    # leaves no build/ folder in the checkout.
    sources = tmp_path_factory.mktemp("sources")
    for name in docker_copied_paths():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, sources / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, sources / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(sources)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    (built,) = out.glob("citeline-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"citeline", next(name for name in top_level if name.endswith(".dist-info"))}
    packaged = {name for name in names if name.endswith(".py")}
    expected = {f"citeline/{path.relative_to(ROOT).as_posix()}" for layer in LAYERS for path in python_files(layer)} | {
        f"citeline/{path.name}" for path in python_files("citeline")
    }
    assert packaged == expected
    assert "citeline/service/static/index.html" in names
    assert any(name.startswith("citeline/service/static/swagger/") for name in names)


def test_the_wheel_entry_point_is_the_namespaced_cli(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = (name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "citeline = citeline.service.cli:main" in text


def test_the_installed_wheel_imports_as_citeline_and_claims_no_generic_name(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)]
    completed = subprocess.run(install, capture_output=True, text=True, check=False, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert sorted(path.name for path in target.iterdir() if not path.name.endswith(".dist-info")) == ["bin", "citeline"]
    probe = (
        "import citeline, citeline.service.cli, citeline.ingest.pipeline, citeline.indexes\n"
        "print(citeline.__file__)\n"
        "print(citeline.service.cli.__file__)\n"
    )
    # The dependencies come from this interpreter's site-packages, citeline from the installed wheel
    # (first on the path, ahead of this checkout's editable install).
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(target)),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert all(line.startswith(str(target)) for line in run.stdout.splitlines()), run.stdout
    assert (target / "bin" / "citeline").read_text().count("from citeline.service.cli import main") == 1


def test_python_dash_m_citeline_runs_the_command_line(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "citeline", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=dict(os.environ, COLUMNS="120"),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    for command in ("ingest", "ask", "serve", "mcp", "models"):
        assert command in completed.stdout
