"""Near-duplicate detection: a 64-bit SimHash of a page's word shingles.

Exact duplicates share a content hash. Near duplicates (the same page with another navigation
date, a version banner, a tracking parameter in a link) differ in a few words; their SimHashes
then differ in a few bits, while unrelated pages differ in about half of the 64.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from citeline.indexes import hamming_distance

_WORD = re.compile(r"\w+")
SHINGLE = 3
NEAR_DISTANCE = 3
"""Bits two SimHashes may differ in for the pages to count as near duplicates."""
MIN_WORDS = 50
"""Shorter pages are never called near duplicates: a few shared words prove nothing."""


def simhash(text: str) -> int | None:
    """Unsigned 64-bit SimHash of ``text``'s 3-word shingles, or None for a page too short to judge."""
    words = _WORD.findall(text.lower())
    if len(words) < MIN_WORDS:
        return None
    digests = b"".join(
        hashlib.blake2b(" ".join(words[i : i + SHINGLE]).encode(), digest_size=8).digest()
        for i in range(len(words) - SHINGLE + 1)
    )
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(-1, 8), axis=1)
    votes = 2 * bits.sum(axis=0, dtype=np.int64) - bits.shape[0]  # +1 per set bit, -1 per clear one
    return int("".join("1" if v > 0 else "0" for v in votes), 2)


distance = hamming_distance
"""Bits that differ between two SimHashes (the index layer's one Hamming distance)."""
