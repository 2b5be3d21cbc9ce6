"""Read an HTTP body from the network with a bound on its decoded size, whatever the server sends.

Every body citeline reads off the network (pages, robots.txt, tdmrep.json, sitemaps, feeds, live
pages, web search answers) is read by :func:`read_bounded` or :func:`read_prefix` (a synchronous
client's by :func:`read_prefix_sync`), and a body that is itself a gzip file is unpacked by
:func:`gunzip_bounded`, all through one :class:`BoundedDecoder`. httpx would undo ``Content-Encoding``
itself, one whole network chunk at a time: 64 KiB of gzipped zeros become 64 MiB and a few hundred
bytes of brotli can become gigabytes before any size cap looks at them. So:

* requests advertise only the encodings whose decoder can be stopped at the cap
  (:data:`ACCEPT_ENCODING`, identity, gzip and deflate: zlib takes a ``max_length``);
* the raw bytes are decoded here, never producing more than the cap (plus one byte, to tell a body
  of exactly the cap from a longer one);
* a response in any other encoding (``br``, ``zstd``, ``compress``, a stacked list), which a hostile
  server may send whatever was asked, is refused unread with a ``FetchError`` of kind ``type``.

Redirect responses carry bodies too, and httpx reads them whole (with its own decoders) when it
follows redirects itself; :func:`send_following` follows them by hand without reading them, and
lets the caller check each hop before it is requested.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable

import httpx

from citeline.ingest._exceptions import FetchError, TooLargeError

ACCEPT_ENCODING = "gzip, deflate"
"""The ``Accept-Encoding`` of every request citeline sends: only what :class:`BoundedDecoder` can bound."""
ACCEPT_HEADERS = {"Accept-Encoding": ACCEPT_ENCODING}
_GZIP_MAGIC = b"\x1f\x8b"
_ZLIB_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


def content_coding(value: str | None, url: str) -> str:
    """The one coding of a ``Content-Encoding`` value (``""`` for none or identity).

    Raises ``FetchError`` (kind ``type``) for a coding :class:`BoundedDecoder` cannot bound or a
    stack of several, which no server citeline asked would send.
    """
    codings = [c.strip().lower() for c in (value or "").split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return ""
    if len(codings) > 1 or codings[0] not in _ZLIB_ENCODINGS:
        raise FetchError(url, f"unsupported content-encoding {(value or '').strip()!r}", kind="type")
    return codings[0]


class BoundedDecoder:
    """Decodes a body chunk by chunk and never produces more than ``limit`` bytes in all.

    :meth:`feed` returns the decoded bytes of a chunk that still fit; once more was there,
    :attr:`over` is True and the rest is dropped undecoded.
    """

    def __init__(self, encoding: str | None, limit: int, url: str) -> None:
        self._url = url
        self._limit = limit
        self.size = 0
        """Decoded bytes handed out so far."""
        self.over = False
        """Whether the body decodes to more than ``limit`` bytes."""
        coding = content_coding(encoding, url)
        self.compressed = bool(coding)
        # 32 + MAX_WBITS detects a gzip or zlib header; a bare deflate stream is retried raw.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS) if coding else None
        self._raw_deflate = coding == "deflate"

    def feed(self, chunk: bytes) -> bytes:
        if self.over or not chunk:
            return b""
        budget = self._limit - self.size
        out = chunk if self._zlib is None else self._inflate(chunk, budget + 1)
        if len(out) > budget:
            self.over = True
            out = out[:budget]
        self.size += len(out)
        return out

    def _inflate(self, data: bytes, want: int) -> bytes:
        assert self._zlib is not None
        out = bytearray()
        while data and len(out) < want:
            if self._zlib.eof:
                # Another gzip member may follow (concatenated members are one valid gzip stream);
                # anything else after the end is trailing junk, ignored as browsers do.
                if not data.startswith(_GZIP_MAGIC):
                    break
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out += self._zlib.decompress(data, want - len(out))
            except zlib.error as exc:
                if not self._raw_deflate or self.size or out:
                    raise FetchError(self._url, "corrupt compressed body", kind="error") from exc
                self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                continue
            self._raw_deflate = False
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        return bytes(out)


async def read_prefix(response: httpx.Response, limit: int, url: str) -> tuple[bytes, bool]:
    """At most ``limit`` decoded bytes of the body, and whether the body went on past them.

    Reading stops at the cap: the rest is never decoded nor, past the current chunk, received.
    Raises ``FetchError`` for an encoding that cannot be bounded or a corrupt compressed body.
    """
    decoder = BoundedDecoder(response.headers.get("content-encoding"), limit, url)
    if response.is_stream_consumed:
        # An in-memory response (httpx.MockTransport given ``content=``) arrives already read and
        # decoded by httpx: it never came off a network, so only its size is left to check.
        content = response.content
        return content[:limit], len(content) > limit
    body = bytearray()
    async for raw in response.aiter_raw():
        body += decoder.feed(raw)
        if decoder.over:
            break
    return bytes(body), decoder.over


def read_prefix_sync(response: httpx.Response, limit: int, url: str) -> tuple[bytes, bool]:
    """:func:`read_prefix` for a response of a synchronous ``httpx.Client`` streamed with ``stream()``."""
    decoder = BoundedDecoder(response.headers.get("content-encoding"), limit, url)
    if response.is_stream_consumed:  # already read and decoded by httpx: see read_prefix
        content = response.content
        return content[:limit], len(content) > limit
    body = bytearray()
    for raw in response.iter_raw():
        body += decoder.feed(raw)
        if decoder.over:
            break
    return bytes(body), decoder.over


async def read_bounded(response: httpx.Response, limit: int, url: str) -> bytes:
    """The whole decoded body, or ``TooLargeError`` (kind ``size``) as soon as it passes ``limit`` bytes."""
    decoded_here = not response.is_stream_consumed and bool(
        content_coding(response.headers.get("content-encoding"), url)
    )
    body, over = await read_prefix(response, limit, url)
    if over:
        what = "decompresses to more than" if decoded_here else "body larger than"
        raise TooLargeError(url, f"{what} {limit} bytes", kind="size")
    return body


def gunzip_bounded(data: bytes, limit: int, url: str) -> bytes:
    """The content of a body that is itself a gzip file (a ``.xml.gz`` sitemap), every member, never
    decompressed past ``limit`` bytes: :class:`BoundedDecoder` does the work, as for a gzip
    Content-Encoding. A truncated stream gives what decompressed so far.

    Raises ``TooLargeError`` past the cap and ``FetchError`` for corrupt data.
    """
    decoder = BoundedDecoder("gzip", limit, url)
    try:
        out = decoder.feed(data)
    except FetchError as exc:
        raise FetchError(url, f"corrupt gzip data: {exc.__cause__}") from exc.__cause__
    if decoder.over:
        raise TooLargeError(url, f"decompresses to more than {limit} bytes")
    return out


Hop = Callable[[httpx.URL], Awaitable[None]]
"""Called with each redirect target before it is requested; raises to stop there."""


async def send_following(
    send: Callable[[httpx.Request], Awaitable[httpx.Response]],
    request: httpx.Request,
    *,
    max_redirects: int | None,
    before_hop: Hop | None = None,
) -> httpx.Response:
    """Send ``request`` and follow its redirects, at most ``max_redirects`` (None: follow none).

    ``send`` must send one request without following redirects and return the response unread
    (``client.send(request, stream=True, follow_redirects=False)``), so that a redirect's body is
    closed unread; httpx builds each next request (method, headers, cookies) as its own following
    would. ``before_hop`` sees every target before it is requested. Returns the last response, which
    the caller reads and closes; raises ``httpx.TooManyRedirects`` past the limit.
    """
    hops = 0
    while True:
        response = await send(request)
        following = response.next_request
        if following is None or max_redirects is None:
            return response
        await response.aclose()
        if hops >= max_redirects:
            raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=following)
        hops += 1
        if before_hop is not None:
            await before_hop(following.url)
        request = following
