from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from indexes import HashEmbedder, PassageIndex
from ingest import IngestInputs, IngestSettings, run_ingest
from ingest.ray_engine import RAY_MISSING, RayOptions, RayUnavailableError, import_ray, run_ray_ingest

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
