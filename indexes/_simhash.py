"""64-bit SimHash fingerprints: the one Hamming distance, and their form in SQLite."""

from __future__ import annotations

UINT64 = (1 << 64) - 1


def hamming_distance(a: int, b: int) -> int:
    """Bits that differ between two 64-bit values, signed or not (the mask makes them agree)."""
    return ((a ^ b) & UINT64).bit_count()


def simhash_to_sql(simhash: int) -> int:
    """An unsigned 64-bit SimHash as the signed 64-bit integer SQLite can store."""
    if not 0 <= simhash <= UINT64:
        raise ValueError(f"simhash {simhash} is not an unsigned 64-bit integer")
    return simhash - (1 << 64) if simhash >> 63 else simhash


def simhash_from_sql(value: int) -> int:
    return value & UINT64
