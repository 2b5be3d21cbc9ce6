"""Decompression bombs and a way to serve them as a network would, for the bounded-reading tests.

A bomb is 200 MiB of zeros compressed to a few hundred kilobytes (gzip) or a few hundred bytes
(brotli), built without ever holding the 200 MiB. :class:`Trickle` hands a body to httpx in 64 KiB
chunks, as a socket read does, so what is measured is what a real server would cost.
:func:`peak_memory` measures the Python heap's high-water mark and the process's peak RSS growth
around a block: a body decoded whole shows up in both.
"""

from __future__ import annotations

import functools
import resource
import struct
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import brotli  # type: ignore[import-untyped]
import httpx

MIB = 1 << 20
BOMB_MIB = 200
CHUNK = 64 * 1024


@functools.cache
def gzip_bomb(mib: int = BOMB_MIB) -> bytes:
    """``mib`` MiB of zeros as one valid gzip member (~1 KB per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor forgets its history, so the next MiB compresses to a block
    # that can be repeated as is.
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    zeros = bytes(MIB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    final_empty_block = b"\x03\x00"
    trailer = struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
    return header + first + block * (mib - 1) + final_empty_block + trailer


@functools.cache
def brotli_bomb(mib: int = BOMB_MIB) -> bytes:
    """``mib`` MiB of zeros as brotli (a few hundred bytes)."""
    compressor = brotli.Compressor(quality=5)
    zeros = bytes(MIB)
    out = bytearray()
    for _ in range(mib):
        out += compressor.process(zeros)
    out += compressor.finish()
    return bytes(out)


BOMBS = {"gzip": gzip_bomb, "br": brotli_bomb}
"""Content-Encoding -> builder."""


class Trickle(httpx.AsyncByteStream):
    """A body handed over in network-sized chunks, not yet read (unlike ``httpx.Response(content=...)``)."""

    def __init__(self, body: bytes, chunk: int = CHUNK) -> None:
        self._body = body
        self._chunk = chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), self._chunk):
            yield self._body[start : start + self._chunk]


def bomb_response(encoding: str, content_type: str, status: int = 200) -> httpx.Response:
    """A response whose body is a 200 MiB bomb in ``encoding``, sent whatever the request accepted."""
    body = BOMBS[encoding]()
    headers = {"content-type": content_type, "content-encoding": encoding}
    return httpx.Response(status, stream=Trickle(body), headers=headers)


def _max_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


@dataclass
class Peak:
    heap: int = 0
    """The Python heap's high-water mark above where it started, in bytes."""
    rss: int = 0
    """How far the process's peak resident set grew, in bytes."""


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """Measure the memory the block takes at its worst (bombs are built before it starts)."""
    peak = Peak()
    rss_before = _max_rss()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    try:
        yield peak
    finally:
        peak.heap = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
        peak.rss = _max_rss() - rss_before


LIMIT = 40 * MIB
"""The memory a bounded read of a bomb may cost: a fifth of what decoding it whole would."""
