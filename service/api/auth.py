"""API keys with scopes, and a request rate per key.

Keys come from settings (``CITELINE_API_KEYS='{"key1": "read", "key2": "ingest"}'``). ``read``
may ask, chat and search; ``ingest`` may also start and cancel ingest jobs. With no key
configured the service is open, which is only sensible on loopback, where it binds by default.
A key is sent as ``Authorization: Bearer KEY`` (what OpenAI clients send) or ``X-API-Key: KEY``.

Keys are secrets: only their SHA-256 digests are kept here, so no repr, log line or error can show
one, and a presented key is compared as bytes against every digest in constant time (any header
bytes at all, non-ASCII included, are just an unknown key).

The rate limit is a token bucket per key (per client address when the service is open): a burst
of ``rate_per_minute`` requests, refilled evenly; past it, 429 with the seconds until the next token.
At most ``max_buckets`` buckets are kept, the least recently used dropped first, so a flood of
client addresses cannot grow memory without limit.

Not Litestar's ``RateLimitConfig``: its middleware keeps a request history per identifier in a
store with no size bound and runs before the key is checked, while the limit here is per checked
key, bounded by ``max_buckets``, and part of the same guard that answers 401/403.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from citeline.service.exceptions import AccessError, RateLimitedError

Scope = Literal["read", "ingest"]
_RANK = {"read": 0, "ingest": 1}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class _Key:
    digest: bytes
    scope: str
    identity: str
    """What the rate limit counts under: a digest prefix, never the key."""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _secret(key: object) -> str:
    return key.get_secret_value() if isinstance(key, SecretStr) else str(key)


class AccessControl:
    """API key -> scope (``keys``, read once: only their digests are kept) and the rate limit.

    Not a dataclass: nothing may derive a repr, a copy or a schema that could carry a key, and
    Litestar's dependency conversion has no business looking inside it."""

    __slots__ = ("_buckets", "_keys", "clock", "max_buckets", "rate_per_minute")

    def __init__(
        self,
        keys: Mapping[str, str] | Mapping[SecretStr, str],
        rate_per_minute: int = 60,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        self.rate_per_minute = rate_per_minute
        self.clock = clock
        self.max_buckets = max_buckets
        """Rate-limit buckets kept at most (the least recently used go first)."""
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        known = []
        for position, (key, scope) in enumerate(keys.items(), start=1):
            # The key's position, not any of its characters, names it: a message may end up in a log.
            if scope not in _RANK:
                raise ValueError(f"API key #{position} of api_keys: scope must be read or ingest, not {scope!r}")
            secret = _secret(key).encode()
            if not secret.strip():
                raise ValueError(f"API key #{position} of api_keys is blank")
            digest = _digest(secret)
            known.append(_Key(digest, scope, f"key:{digest.hex()[:16]}"))
        self._keys = tuple(known)

    def __repr__(self) -> str:
        return f"AccessControl(<{len(self._keys)} keys>, rate_per_minute={self.rate_per_minute})"

    @property
    def open(self) -> bool:
        return not self._keys

    def authenticate(self, headers: Mapping[str, str], client: str, needed: Scope) -> str:
        """Return the caller's identity (a key's digest prefix, or the client address) or raise AccessError."""
        if self.open:
            identity = f"client:{client}"
        else:
            presented = _presented_key(headers)
            if presented is None:
                raise AccessError("an API key is required (Authorization: Bearer KEY or X-API-Key)", 401)
            # ASGI headers are latin-1 text: back to the bytes that were sent, then compared as
            # digests (equal lengths, so compare_digest never raises and takes the same time).
            digest = _digest(_raw(presented))
            match = None
            for key in self._keys:  # every key is compared: the time does not say which one matched
                if hmac.compare_digest(key.digest, digest):
                    match = key
            if match is None:
                raise AccessError("unknown API key", 401)
            if _RANK[match.scope] < _RANK[needed]:
                raise AccessError(f"this key has the {match.scope!r} scope; this endpoint needs {needed!r}", 403)
            identity = match.identity
        self._spend(identity)
        return identity

    def _spend(self, identity: str) -> None:
        if self.rate_per_minute <= 0:
            return
        now = self.clock()
        capacity = float(self.rate_per_minute)
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._buckets[identity] = _Bucket(capacity, now)
            while len(self._buckets) > max(1, self.max_buckets):
                # The least recently seen caller is the most likely to have refilled already.
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(identity)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * capacity / 60.0)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) * 60.0 / capacity)
            raise RateLimitedError(f"more than {self.rate_per_minute} requests a minute", max(1, wait))
        bucket.tokens -= 1.0


def _raw(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (ASGI gives latin-1), but no input may raise
        return text.encode("utf-8", "surrogatepass")


def _presented_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return headers.get("x-api-key") or None
