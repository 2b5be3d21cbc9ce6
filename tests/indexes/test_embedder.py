from __future__ import annotations

import numpy as np
import pytest

from indexes import Embedder, HashEmbedder


@pytest.mark.parametrize("embedder", [HashEmbedder(16), HashEmbedder(64)])
def test_embedder_contract(embedder: Embedder) -> None:
    vectors = embedder.embed(["read a json file", "write rows to csv", ""])
    assert vectors.shape == (3, embedder.dimension)
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors[:2], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    again = embedder.embed(["read a json file"])
    # Batch composition changes float rounding in real models: equal to 1e-5, not bit for bit.
    assert np.allclose(again[0], vectors[0], atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_hash_embedder_puts_shared_words_closer() -> None:
    embedder = HashEmbedder(64)
    query, near, far = embedder.embed(["json file load", "load the json file", "rows of a csv table"])
    assert float(query @ near) > float(query @ far)


@pytest.mark.e2e
def test_real_embedder_meets_the_same_contract() -> None:
    from indexes import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    assert embedder.dimension == 384
    test_embedder_contract(embedder)
    query, near, far = embedder.embed(
        ["How do I parse JSON?", "json.loads() deserializes a JSON document", "The tide rises twice a day"]
    )
    assert float(query @ near) > float(query @ far) + 0.2
