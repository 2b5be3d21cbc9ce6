"""The FAISS vector index kinds a :class:`~indexes.PassageIndex` uses, and the choice between them by size.

Two kinds, both holding passage ids natively so the live index can ``add_with_ids`` and
``remove_ids`` as pages are replaced and removed:

``flat``     ``IDMap2,Flat``: exact inner product over float32 vectors. 1.5 KB a 384-d passage and a
             scan of every vector per query: the right index while that scan is cheap.
``ivf_sq8``  ``IVF<nlist>,SQ8``: vectors in ``nlist`` k-means lists, 8-bit scalar-quantised (~0.4 KB a
             384-d passage); a query scans the ``nprobe`` nearest lists. Trained on a sample of the
             stored vectors whenever it is (re)built.

The choice (:class:`VectorIndexPolicy`) comes from ``bench/retrieval.py`` (bench/results/retrieval.json)
on the 2-core dev machine under load, one search thread, synthetic vectors shaped like the python-docs
passages and the real eval questions as queries:

* Flat costs about 0.11 ms of p50 latency per 1000 passages (12-18 ms at 100k; 109 ms and 1.47 GB at
  1M): it reaches the 20 ms budget near 180k passages and half of it near 90k. The policy switches to
  IVF at 100k; the 14k-passage demo index (0.6 ms p50) stays exact.
* IVF-SQ8 with ``nlist`` the power of two nearest ``sqrt(n)`` and ``nprobe = max(32, nlist/16)``:
  recall@10 0.977 of exact at 100k (0.45 ms p50) and 0.973 at 1M (IVF1024, nprobe 64: 4-6 ms p50 under
  load, 375 MB, 394 B a passage, built in 36 s); 0.983 on the real 13.9k vectors. The 8-bit codes cap
  recall near 0.98; ``nprobe`` 16 fell under 0.95 at both sizes, hence the floor of 32.
* HNSW-SQ8 (M=32) reached 0.96 at 100k but took 29 s to build there against IVF's 1.2 s; at 1M even
  reduced build parameters took 216 s and reached only 0.81. It cannot remove ids either (deletions
  would need tombstones filtered at search time and periodic rebuilds). IVF-PQ (4-bit fast scan, 58 B a
  passage) needs its top 100 re-ranked from the stored float vectors and still reached only 0.93 at
  1M. Both are in the benchmark for comparison only; IVF-PQ with a re-rank from SQLite is the way on
  past ~2.5M passages, where IVF-SQ8 would pass 1 GB.

The kind changes only when the index is rebuilt (a stale file at open, or :meth:`PassageIndex.flush`
finding the count across a threshold), never on a single add; thresholds have hysteresis so a count
hovering near one does not rebuild on every flush.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from citeline.indexes._files import atomic_write

VectorIndexKind = Literal["flat", "ivf_sq8"]
"""The vector index kinds: exact search, or inverted lists of 8-bit scalar-quantised vectors."""

FLAT_FACTORY = "IDMap2,Flat"
"""The factory string of the exact index: what every index written before the IVF kind holds."""

_IVF_FACTORY = re.compile(r"^IVF(\d+),SQ8$")


@dataclass(frozen=True, slots=True)
class VectorIndexSpec:
    """What to build: the kind and, for IVF, the number of lists. Recorded in the manifest as :attr:`factory`."""

    kind: VectorIndexKind = "flat"
    nlist: int = 0
    """The number of IVF lists (k-means centroids); 0 for ``flat``."""

    def __post_init__(self) -> None:
        if (self.kind == "flat") != (self.nlist == 0) or self.nlist < 0:
            raise ValueError(f"{self.kind} index with nlist={self.nlist}")

    @property
    def factory(self) -> str:
        """The FAISS factory string, as the manifest's ``faiss_index`` records it."""
        return FLAT_FACTORY if self.kind == "flat" else f"IVF{self.nlist},SQ8"

    @classmethod
    def parse(cls, factory: str) -> VectorIndexSpec:
        """The spec a manifest's ``faiss_index`` names; ValueError for a string it does not know."""
        if factory == FLAT_FACTORY:
            return cls()
        match = _IVF_FACTORY.match(factory)
        if match is None:
            raise ValueError(f"unknown vector index {factory!r}")
        return cls("ivf_sq8", int(match.group(1)))


FLAT = VectorIndexSpec()


@dataclass(frozen=True, slots=True)
class VectorIndexPolicy:
    """Which index kind a passage count gets, and how an IVF index is trained and searched.

    Figures from ``bench/retrieval.py``; see the module docstring. Tests pass small thresholds.
    """

    ivf_min_passages: int = 100_000
    """At or above this count a Flat index is rebuilt as IVF (Flat p50 12-18 ms there: about half the budget)."""
    flat_max_passages: int = 50_000
    """An IVF index goes back to Flat only below this count (hysteresis; at most ``ivf_min_passages``)."""
    min_nprobe: int = 32
    """Lists scanned per query at least: below 32 recall@10 fell under 0.95 at 100k and 1M."""
    nprobe_divisor: int = 16
    """And at least ``nlist / nprobe_divisor`` lists, for a margin as lists get finer."""
    train_points_per_list: int = 40
    """Training sample per list (FAISS asks for at least 39 points per centroid)."""
    retrain_factor: int = 4
    """An IVF index is retrained when the list count the size calls for is this many times off."""
    seed: int = 1234
    """Seeds the training sample and k-means, so a rebuild of the same store builds the same index."""

    def __post_init__(self) -> None:
        if not 0 < self.flat_max_passages <= self.ivf_min_passages:
            raise ValueError("need 0 < flat_max_passages <= ivf_min_passages")

    def nlist_for(self, count: int) -> int:
        """The power of two nearest ``sqrt(count)``, with enough points to train every list."""
        nlist = 1 << max(0, round(math.log2(math.sqrt(max(count, 1)))))
        while nlist > 1 and nlist * self.train_points_per_list > count:
            nlist //= 2
        return nlist

    def nprobe_for(self, nlist: int) -> int:
        """Lists scanned per query for an index of ``nlist`` lists."""
        return min(nlist, max(self.min_nprobe, nlist // self.nprobe_divisor))

    def train_size(self, nlist: int, count: int) -> int:
        """How many stored vectors to train an ``nlist``-list index on."""
        return min(count, nlist * self.train_points_per_list)

    def choose(self, count: int, current: VectorIndexSpec | None = None) -> VectorIndexSpec:
        """The spec an index of ``count`` vectors should have, given the one it has (None: building anew)."""
        is_ivf = current is not None and current.kind == "ivf_sq8"
        if count < (self.flat_max_passages if is_ivf else self.ivf_min_passages):
            return FLAT
        nlist = self.nlist_for(count)
        if current is not None and is_ivf:
            ratio = max(nlist, current.nlist) / min(nlist, current.nlist)
            if ratio < self.retrain_factor:
                return current
        return VectorIndexSpec("ivf_sq8", nlist)


def new_vector_index(spec: VectorIndexSpec, dimension: int) -> Any:
    """An empty index of ``spec`` over inner products; an IVF one still needs :func:`train_vector_index`."""
    return faiss.index_factory(dimension, spec.factory, faiss.METRIC_INNER_PRODUCT)


def train_vector_index(index: Any, sample: np.ndarray[Any, np.dtype[np.float32]], *, seed: int) -> None:
    """Train an IVF index (its k-means lists and 8-bit ranges) on a sample of the vectors it will hold."""
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def spec_of(index: Any) -> VectorIndexSpec | None:
    """The spec of a loaded index; None for one this version does not build (it is rebuilt)."""
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        return None
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat):
        return FLAT
    if isinstance(index, faiss.IndexIVFScalarQuantizer) and index.sq.qtype == faiss.ScalarQuantizer.QT_8bit:
        return VectorIndexSpec("ivf_sq8", int(index.nlist))
    return None


def configure_search(index: Any, policy: VectorIndexPolicy) -> None:
    """Set the search-time parameters the policy gives an index (``nprobe`` for IVF)."""
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = policy.nprobe_for(int(index.nlist))


def write_vector_index(index: Any, path: Path) -> None:
    """Write an index to ``path`` atomically (:func:`~indexes.atomic_write`).

    ``faiss.write_index`` streams to the file, so a large index is not copied into memory first.
    """
    atomic_write(path, lambda tmp: faiss.write_index(index, str(tmp)))


def set_search_threads(threads: int) -> None:
    """Threads FAISS uses per call. A service answering one query at a time is fastest on one: on
    2 busy cores a single Flat query over 100k passages took 92 ms with 2 threads and 15 ms with 1
    (bench/retrieval.py). Building and training an index still benefit from more."""
    faiss.omp_set_num_threads(max(1, threads))
