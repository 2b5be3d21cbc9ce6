"""A BM25 index over an index's passages, kept as derived data next to the store.

Each passage is indexed as the embedder reads it (page title, section heading and text), so a
word of the title matches every passage of the page, as it pulls them closer in vector space.

Tokens are lower-cased, a short list of English stop words dropped and words Snowball-stemmed,
with code kept findable: a dotted name (``os.path.splitext``) is indexed whole, as its shorter
dotted runs (``os.path``, ``path.splitext``) and as its parts, and an identifier (``__init__``,
``get_object_or_404``, ``HttpResponseRedirect``) whole and as its words. A question naming
``json.loads`` matches it exactly and one saying "json load" still matches its parts. Whole names
are never stemmed or dropped as stop words.

Layout of ``<index dir>/bm25/``::

    current.json     which build is current, and the store generation it was built from
    g<gen>-<nonce>/  one build: the bm25s arrays and ``ids.npy`` (row -> passage id)

A build is written to a temporary directory, renamed into place, then made current by replacing
``current.json`` (each with ``os.replace``): a crash leaves the previous build current, never a
half-written one, and a reader never sees files of two builds. A build whose generation differs
from the store's is stale: the writer opener rebuilds and saves it, a read-only opener builds
one in memory and writes nothing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import Stemmer  # type: ignore[import-not-found]

from citeline.indexes._files import atomic_write
from citeline.indexes._index import PassageIndex
from citeline.indexes._layout import DB_FILE
from citeline.indexes._passages import read_passage_texts

LEXICAL_DIR = "bm25"
CURRENT_FILE = "current.json"
IDS_FILE = "ids.npy"
TOKENIZER_VERSION = 1
"""Bumped whenever :func:`tokenize` changes: a build made with another version is stale."""
_STALE_TEMP_SECONDS = 3600.0
"""A temporary build directory older than this was left by a crashed writer, and is removed."""

_CANDIDATE = re.compile(r"\w+(?:\.\w+)*")
_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_STEMMER = Stemmer.Stemmer("english")
_MAX_SPANNED_PARTS = 5


def _bm25s() -> Any:
    """bm25s, imported on first use: it pulls in scipy, a third of a second on every CLI start."""
    import bm25s  # type: ignore[import-untyped]

    return bm25s


@functools.cache
def stopwords() -> frozenset[str]:
    """bm25s's short English list (Lucene's 33 words).

    Not NLTK's longer one: dropping "how", "why", "can" or "do" lost BM25 a fifth of its hits
    on the Python FAQ (hit@5 0.96 -> 0.87 verbatim, 0.70 -> 0.58 paraphrased), where such words
    are what a question shares with the heading that answers it.
    """
    from bm25s.stopwords import STOPWORDS_EN  # type: ignore[import-untyped]

    return frozenset(STOPWORDS_EN)


def stem_word(word: str) -> str:
    """One lower-case word, Snowball-stemmed (the stemmer BM25 and the citation checker share)."""
    return str(_STEMMER.stemWord(word))


def embedding_text(title: str, heading: str, passage: str) -> str:
    """What is indexed for a passage: the text the embedder reads (same rule as ``ingest``)."""
    context = title if not heading or heading in passage else f"{title} — {heading}"
    return f"{context}\n{passage}"


def _words(part: str, out: list[str]) -> None:
    """Append the stemmed, non-stop-word pieces of one identifier (``get_object``, ``HttpResponse``)."""
    pieces = [part] if part.isalpha() and (part.islower() or part.istitle()) else _SUBWORD.findall(part)
    for piece in pieces:
        word = piece.lower()
        if len(word) > 1 and word not in stopwords():
            out.append(_STEMMER.stemWord(word))


def _is_identifier(part: str) -> bool:
    """True for a name worth keeping whole: underscores, or case changes after the first letter."""
    if len(part) < 2 or not any(c.isalpha() for c in part):
        return False
    return "_" in part or (not part.islower() and not part.isupper() and not part.istitle() and part.isalnum())


def tokenize(text: str) -> list[str]:
    """BM25 tokens of a text: stemmed words, plus dotted names and identifiers kept whole."""
    out: list[str] = []
    for token in _CANDIDATE.findall(text):
        out.extend(_token_terms(token))
    return out


@functools.lru_cache(maxsize=1 << 18)
def _token_terms(token: str) -> tuple[str, ...]:
    """The terms of one candidate token; cached, as most of a corpus is a few thousand words repeated."""
    out: list[str] = []
    parts = token.split(".")
    if len(parts) > 1:
        lowered = token.lower().split(".")
        # Every run of two or more parts, so "os.path" and "path.join" find "os.path.join"; a long
        # chain (rare outside of version numbers) keeps its prefixes only.
        starts = range(len(parts) - 1) if len(parts) <= _MAX_SPANNED_PARTS else range(1)
        out.extend(".".join(lowered[i:j]) for i in starts for j in range(i + 2, len(parts) + 1))
    for part in parts:
        if _is_identifier(part):
            out.append(part.lower())
        _words(part, out)
    return tuple(out)


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


def bm25_scores(query: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """BM25 score of each text for ``query`` (0 where no token is shared), over ``texts`` alone:
    for ranking a handful of passages that are in no index, such as a page fetched a moment ago."""
    scores = np.zeros(len(texts), dtype=np.float32)
    tokens = tokenize(query)
    if not texts or not tokens:
        return scores
    model = _bm25s().BM25()
    model.index(tokenize_many(texts), show_progress=False)
    token_ids = model.get_tokens_ids(tokens)
    if token_ids:
        scores[:] = model.get_scores_from_ids(token_ids)
    return scores


@dataclass(frozen=True, slots=True)
class LexicalStats:
    """How an opened lexical index came to be: for logs and benchmarks."""

    source: str
    """``"loaded"`` (a persisted build), ``"built"`` (rebuilt and saved) or ``"memory"`` (built, not saved)."""
    seconds: float


class LexicalIndex:
    """BM25 (bm25s, Lucene variant) over the passages of one :class:`PassageIndex` at one generation.

    Immutable once made, so searches are thread-safe; open a new one when the store changes
    (:meth:`is_stale` tells).
    """

    def __init__(self, generation: int, ids: npt.NDArray[np.int64], model: Any, stats: LexicalStats) -> None:
        self.generation = generation
        """The store generation this index was built from."""
        self.stats = stats
        self._ids = ids
        self._model = model  # None when there are no passages: bm25s cannot index nothing

    def __len__(self) -> int:
        return len(self._ids)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, index: PassageIndex, *, read_only: bool = True) -> LexicalIndex:
        """The index's current BM25 build: loaded when fresh, else rebuilt.

        A writer (``read_only=False``) saves what it rebuilds; a reader keeps it in memory only.
        """
        started = time.perf_counter()
        loaded = cls.load(index)
        if loaded is not None:
            return loaded
        built = cls.build(index)
        if read_only:
            return built
        built.save(index.path)
        return cls(built.generation, built._ids, built._model, LexicalStats("built", time.perf_counter() - started))

    @classmethod
    def load(cls, index: PassageIndex) -> LexicalIndex | None:
        """The persisted build when it matches the store's generation, else None (missing, stale, unreadable)."""
        started = time.perf_counter()
        root = index.path / LEXICAL_DIR
        try:
            current = json.loads((root / CURRENT_FILE).read_text())
            if current.get("tokenizer") != TOKENIZER_VERSION or current.get("generation") != index.generation():
                return None
            build = root / str(current["dir"])
            ids = np.load(build / IDS_FILE, allow_pickle=False).astype(np.int64, copy=False)
            model = None
            if len(ids):
                model = _bm25s().BM25.load(build, load_corpus=False, mmap=False, show_progress=False)
                if int(model.scores["num_docs"]) != len(ids):
                    return None
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
            # Missing, half-deleted by a concurrent rebuild, or unreadable: rebuilding is always correct.
            return None
        return cls(int(current["generation"]), ids, model, LexicalStats("loaded", time.perf_counter() - started))

    @classmethod
    def build(cls, index: PassageIndex) -> LexicalIndex:
        """Build in memory from the store (one consistent snapshot of passages and generation)."""
        started = time.perf_counter()
        generation, ids, texts = _read_passages(index.path / DB_FILE)
        model = None
        if texts:
            model = _bm25s().BM25()
            model.index(tokenize_many(texts), show_progress=False)
        return cls(generation, ids, model, LexicalStats("memory", time.perf_counter() - started))

    def save(self, index_path: Path) -> Path:
        """Persist this build under ``index_path/bm25`` atomically and make it current; return its directory."""
        root = index_path / LEXICAL_DIR
        root.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        try:
            np.save(tmp / IDS_FILE, self._ids, allow_pickle=False)
            if self._model is not None:
                self._model.save(tmp, show_progress=False)
            for child in tmp.iterdir():
                _fsync(child)
            final = root / f"g{self.generation}-{tmp.name.removeprefix('.tmp-')}"
            tmp.replace(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        current = {
            "dir": final.name,
            "generation": self.generation,
            "passages": len(self._ids),
            "tokenizer": TOKENIZER_VERSION,
            "bm25s": _bm25s().__version__,
        }
        atomic_write(root / CURRENT_FILE, json.dumps(current, indent=2).encode())
        _remove_old_builds(root, keep=final.name)
        return final

    def is_stale(self, index: PassageIndex) -> bool:
        return self.generation != index.generation()

    # -- searching ---------------------------------------------------------------------------

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """``(passage_id, bm25 score)`` of the ``k`` best passages sharing a token with ``query``, best first."""
        if self._model is None or k <= 0:
            return []
        token_ids = self._model.get_tokens_ids(tokenize(query))
        if not token_ids:
            return []
        scores: npt.NDArray[np.float32] = self._model.get_scores_from_ids(token_ids)
        matched = np.flatnonzero(scores > 0)
        if len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
        # Ties broken by passage id, so equal scores rank the same on every run.
        order = sorted(matched.tolist(), key=lambda row: (-float(scores[row]), int(self._ids[row])))
        return [(int(self._ids[row]), float(scores[row])) for row in order]


def _read_passages(db_path: Path) -> tuple[int, npt.NDArray[np.int64], list[str]]:
    """``(generation, ids, texts)`` read in one transaction, through a read-only connection."""
    generation, rows = read_passage_texts(db_path)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return generation, ids, [embedding_text(r[1], r[2], r[3]) for r in rows]


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _remove_old_builds(root: Path, *, keep: str) -> None:
    """Remove builds other than ``keep``, and temporary ones a crashed writer left behind.

    A reader still loading a removed build fails and rebuilds in memory, which is correct.
    """
    now = time.time()
    for child in root.iterdir():
        if child.name in {keep, CURRENT_FILE}:
            continue
        if child.name.startswith("."):
            try:
                fresh = now - child.stat().st_mtime < _STALE_TEMP_SECONDS
            except OSError:
                continue
            if fresh:
                continue  # maybe another writer's build in progress
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
