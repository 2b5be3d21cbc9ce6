from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from citeline.indexes import HashEmbedder, PassageIndex
from citeline.ingest import IngestInputs, IngestSettings, run_ingest
from citeline.ingest.ray_engine import RAY_MISSING, RayOptions, RayUnavailableError, import_ray, run_ray_ingest

SENTENCE = "Section {0} explains how the {1} module reads and writes {2} with enough words to be kept. "


def write_pages(root: Path, count: int) -> None:
    for n in range(count):
        body = "".join(
            f"<h2>Part {k}</h2><p>{SENTENCE.format(k, f'mod{n}', f'files{k}') * (3 + k)}</p>" for k in range(4)
        )
        (root / f"page{n}.html").write_text(
            f"<html><head><title>Page {n}</title></head><body><h1>Page {n}</h1>{body}</body></html>"
        )
    (root / "empty.html").write_text("<html><body></body></html>")


def test_missing_ray_is_a_friendly_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_ray(name: str, package: str | None = None) -> ModuleType:
        if name == "ray":
            raise ModuleNotFoundError("No module named 'ray'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    with pytest.raises(RayUnavailableError, match=r"pip install 'citeline\[ray\]'") as raised:
        import_ray()
    assert str(raised.value) == RAY_MISSING


@pytest.fixture
def local_ray() -> Iterator[ModuleType]:
    if importlib.util.find_spec("ray") is None:
        reason = "ray is not installed (pip install 'citeline[ray]'): the Ray engine test cannot run"
        # `make ray-test` sets it: in the virtualenv made for Ray, a skip would hide a broken install.
        if os.environ.get("CITELINE_REQUIRE_RAY") == "1":
            pytest.fail(f"CITELINE_REQUIRE_RAY=1 but {reason}")
        pytest.skip(reason)
    ray = importlib.import_module("ray")
    ray.init(num_cpus=2, object_store_memory=200_000_000, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def index_contents(index: PassageIndex) -> list[tuple[str, int, int, str, str, float]]:
    """Every passage with its score against a fixed query: equal scores for many queries mean
    equal vectors."""
    query = HashEmbedder(32).embed(["module reads writes files section part"])
    hits = index.search(query, k=10_000)
    return sorted((h.url, h.start, h.end, h.text, h.heading, h.score) for h in hits)


@pytest.mark.e2e
@pytest.mark.ray
# Ray Data warns about its own deprecated settings on import; not something citeline sets
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")
async def test_ray_engine_writes_the_same_index_as_the_local_engine(tmp_path: Path, local_ray: ModuleType) -> None:
    del local_ray
    site = tmp_path / "site"
    site.mkdir()
    write_pages(site, 6)
    inputs = IngestInputs(directory=site, base_url="https://docs.example/")
    local = await run_ingest(
        settings=IngestSettings(data_dir=tmp_path / "local", index="t"), embedder=HashEmbedder(32), inputs=inputs
    )
    remote = await run_ray_ingest(
        settings=IngestSettings(data_dir=tmp_path / "ray", index="t"),
        embedder_factory=functools.partial(HashEmbedder, 32),
        ray_options=RayOptions(embed_actors=2, actor_cpus=0.5, window_pages=4),
        inputs=inputs,
    )
    assert (
        (remote.pages_new, remote.passages_added)
        == (local.pages_new, local.passages_added)
        == (6, local.passages_added)
    )
    assert [f.url for f in remote.failures] == [f.url for f in local.failures] == ["https://docs.example/empty.html"]
    local_index = PassageIndex.open(tmp_path / "local", "t")
    ray_index = PassageIndex.open(tmp_path / "ray", "t")
    try:
        assert ray_index.page_urls() == local_index.page_urls()
        ours, theirs = index_contents(ray_index), index_contents(local_index)
        assert [row[:5] for row in ours] == [row[:5] for row in theirs]
        np.testing.assert_allclose([row[5] for row in ours], [row[5] for row in theirs], atol=1e-5)
        assert ray_index.check_integrity() == []
    finally:
        local_index.close()
        ray_index.close()


class _Ref:
    def __init__(self, value: object) -> None:
        self.value = value


class _Batches:
    """What ``map_batches`` gives back: its batches, iterated last first (Ray keeps no order)."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches = batches

    def iter_batches(self, *, batch_format: str, batch_size: int | None) -> Iterator[dict[str, np.ndarray]]:
        del batch_format, batch_size
        return iter(self._batches[::-1])


class _Dataset:
    def __init__(self, rows: list[dict[str, object]]) -> None:
        self._rows = rows

    def map_batches(
        self, actor: type, *, fn_constructor_args: tuple[object, ...], batch_size: int, **_: object
    ) -> _Batches:
        embed = actor(*fn_constructor_args)
        chunks = [self._rows[i : i + batch_size] for i in range(0, len(self._rows), batch_size)]
        return _Batches(
            [embed({k: np.array([row[k] for row in chunk], dtype=object) for k in ("row", "text")}) for chunk in chunks]
        )


def fake_ray() -> tuple[ModuleType, list[int]]:
    """A stand-in ``ray`` module: tasks run at once (their results pickled, as Ray would), Ray Data
    embeds in order but hands batches back reversed; and the list of Ray Data jobs' sizes."""
    ray = ModuleType("ray")
    jobs: list[int] = []
    started = [False]

    def remote(**_: object) -> object:
        def wrap(fn: object) -> object:
            task = ModuleType("task")
            task.remote = lambda *args: _Ref(pickle.loads(pickle.dumps(fn(*args))))  # type: ignore[attr-defined, operator]
            return task

        return wrap

    def from_items(rows: list[dict[str, object]]) -> _Dataset:
        jobs.append(len(rows))
        return _Dataset(rows)

    ray.remote = remote  # type: ignore[attr-defined]
    ray.get = lambda ref: ref.value  # type: ignore[attr-defined]
    ray.is_initialized = lambda: started[0]  # type: ignore[attr-defined]
    ray.init = lambda **_: started.__setitem__(0, True)  # type: ignore[attr-defined]
    ray.shutdown = lambda: started.__setitem__(0, False)  # type: ignore[attr-defined]
    ray.data = ModuleType("ray.data")  # type: ignore[attr-defined]
    ray.data.from_items = from_items
    ray.data.ActorPoolStrategy = lambda size: size
    return ray, jobs


async def test_the_ray_engine_runs_the_pipeline_loop_many_pages_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Ray: the Ray engine's own code (tasks, the window of pages ahead, Ray Data embedding
    and its row order) through the pipeline's one loop writes the local engine's index."""
    ray, jobs = fake_ray()
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda name, package=None: ray if name == "ray" else real(name))
    site = tmp_path / "site"
    site.mkdir()
    write_pages(site, 6)
    (site / "again.html").write_text((site / "page1.html").read_text())  # page1 repeats it within one window
    inputs = IngestInputs(directory=site, base_url="https://docs.example/")
    local = await run_ingest(
        settings=IngestSettings(data_dir=tmp_path / "local", index="t"), embedder=HashEmbedder(32), inputs=inputs
    )
    remote = await run_ray_ingest(
        settings=IngestSettings(data_dir=tmp_path / "ray", index="t"),
        embedder_factory=functools.partial(HashEmbedder, 32),
        ray_options=RayOptions(window_pages=4, batch_passages=20),
        inputs=inputs,
    )
    assert not ray.is_initialized(), "a Ray the run started is shut down"
    assert (remote.pages_new, remote.duplicates, remote.passages_added) == (6, 1, local.passages_added)
    assert local.duplicates == 1
    assert [f.url for f in remote.failures] == [f.url for f in local.failures] == ["https://docs.example/empty.html"]
    assert sum(jobs) == local.passages_added
    assert len(jobs) > 1, "passages are embedded in several Ray Data jobs"
    local_index = PassageIndex.open(tmp_path / "local", "t")
    ray_index = PassageIndex.open(tmp_path / "ray", "t")
    try:
        assert ray_index.page_urls() == local_index.page_urls()
        assert index_contents(ray_index) == index_contents(local_index)
        assert ray_index.check_integrity() == []
    finally:
        local_index.close()
        ray_index.close()
