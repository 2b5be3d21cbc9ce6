"""API keys with scopes, and a request rate per key.

Keys come from settings (``CITELINE_API_KEYS='{"key1": "read", "key2": "ingest"}'``). ``read``
may ask, chat and search; ``ingest`` may also start and cancel ingest jobs. With no key
configured the service is open, which is only sensible on loopback, where it binds by default.
A key is sent as ``Authorization: Bearer KEY`` (what OpenAI clients send) or ``X-API-Key: KEY``.

The rate limit is a token bucket per key (per client address when the service is open): a burst
of ``rate_per_minute`` requests, refilled evenly; past it, 429 with the seconds until the next token.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from service.exceptions import AccessError, RateLimitedError

Scope = Literal["read", "ingest"]
_RANK = {"read": 0, "ingest": 1}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(slots=True)
class AccessControl:
    keys: Mapping[str, str]
    """API key -> scope."""
    rate_per_minute: int = 60
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, scope in self.keys.items():
            if scope not in _RANK:
                raise ValueError(f"API key {key[:4]}…: scope must be read or ingest, not {scope!r}")

    @property
    def open(self) -> bool:
        return not self.keys

    def authenticate(self, headers: Mapping[str, str], client: str, needed: Scope) -> str:
        """Return the caller's identity (key or client address) or raise AccessError."""
        if self.open:
            identity = f"client:{client}"
        else:
            presented = _presented_key(headers)
            if presented is None:
                raise AccessError("an API key is required (Authorization: Bearer KEY or X-API-Key)", 401)
            scope = next((s for k, s in self.keys.items() if hmac.compare_digest(k, presented)), None)
            if scope is None:
                raise AccessError("unknown API key", 401)
            if _RANK[scope] < _RANK[needed]:
                raise AccessError(f"this key has the {scope!r} scope; this endpoint needs {needed!r}", 403)
            identity = f"key:{presented[:6]}"
        self._spend(identity)
        return identity

    def _spend(self, identity: str) -> None:
        if self.rate_per_minute <= 0:
            return
        now = self.clock()
        capacity = float(self.rate_per_minute)
        bucket = self._buckets.setdefault(identity, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * capacity / 60.0)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) * 60.0 / capacity)
            raise RateLimitedError(f"more than {self.rate_per_minute} requests a minute", max(1, wait))
        bucket.tokens -= 1.0


def _presented_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return headers.get("x-api-key") or None
