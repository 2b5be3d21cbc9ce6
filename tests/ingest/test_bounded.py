"""citeline.ingest.bounded: the readers not exercised through the crawler (a synchronous client's, a gzip file's)."""

from __future__ import annotations

import gzip

import httpx
import pytest

from citeline.ingest import FetchError, TooLargeError
from citeline.ingest.bounded import ACCEPT_HEADERS, gunzip_bounded, read_prefix_sync
from tests.bombs import LIMIT, brotli_bomb, gzip_bomb, peak_memory


def sync_bomb(encoding: str) -> httpx.MockTransport:
    """A synchronous transport answering every request with a 200 MiB bomb in ``encoding``."""
    body = gzip_bomb() if encoding == "gzip" else brotli_bomb()
    headers = {"content-type": "application/json", "content-encoding": encoding}
    return httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(body), headers=headers))


def test_a_synchronous_client_reads_a_bomb_with_a_bound() -> None:
    with (
        httpx.Client(transport=sync_bomb("gzip")) as client,
        peak_memory() as peak,
        client.stream("GET", "https://h.example/", headers=ACCEPT_HEADERS) as response,
    ):
        body, over = read_prefix_sync(response, 1000, "https://h.example/")
    assert (body, over) == (bytes(1000), True)
    assert peak.heap < LIMIT, peak


def test_a_synchronous_client_refuses_an_encoding_it_cannot_bound() -> None:
    with (
        httpx.Client(transport=sync_bomb("br")) as client,
        client.stream("GET", "https://h.example/") as response,
        pytest.raises(FetchError, match="unsupported content-encoding 'br'"),
    ):
        read_prefix_sync(response, 1000, "https://h.example/")


def test_gunzip_bounded_reads_every_member_up_to_the_cap() -> None:
    data = gzip.compress(b"one ") + gzip.compress(b"two")
    assert gunzip_bounded(data, 100, "u") == b"one two"
    with pytest.raises(TooLargeError, match="decompresses to more than 5 bytes"):
        gunzip_bounded(data, 5, "u")
    assert gunzip_bounded(data[:-12], 100, "u").startswith(b"one"), "a cut stream gives what it holds"
    with pytest.raises(FetchError, match=r"corrupt gzip data: Error -3"):
        gunzip_bounded(b"\x1f\x8b\x08\x00garbage-garbage", 100, "u")
