"""The TDM Reservation Protocol's ``/.well-known/tdmrep.json``: parsed, matched against a URL, and
fetched once per origin through the caller's client (:class:`TdmRepCache`)."""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx

from citeline.ingest._clock import Clock
from citeline.ingest._exceptions import FetchError
from citeline.ingest._origin_cache import (
    CACHE_MAX_BYTES,
    DAY,
    ENTRY_BYTES,
    MAX_ORIGINS,
    OriginCache,
    get_capped,
    origin_of,
)

log = logging.getLogger(__name__)

TDMREP_MAX_BYTES = 500 * 1024
# Estimated bytes of memory per byte of file once parsed (tracemalloc, worst case: parse_tdmrep ~10).
_TDMREP_BYTES_PER_BYTE = 12

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def _normalise_path(path: str) -> str:
    """Decode escapes of unreserved characters, upper-case the others, escape what must be escaped."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else f"%{match[1].upper()}"

    return quote(_ESCAPE.sub(fix, path), safe=_URL_SAFE)


def _match_target(url: str) -> str:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return _normalise_path(target)


@dataclass(frozen=True, slots=True)
class TdmRule:
    """One rule of a tdmrep.json: a location pattern and whether TDM rights are reserved there.

    ``location`` is a robots.txt-style path pattern: a prefix, ``*`` for any run of characters, ``$`` at
    the end to anchor it. Matching is case-sensitive, after decoding escaped unreserved characters.
    """

    location: str
    reserved: bool
    policy: str | None = None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        location = self.location.strip()
        if location.startswith(("http://", "https://")):
            location = urlsplit(location).path or "/"
        if not location.startswith(("/", "*")):
            location = f"/{location}"
        anchored = location.endswith("$")
        location = _normalise_path(location.removesuffix("$") if anchored else location)
        regex = ".*".join(re.escape(piece) for piece in location.split("*")) + (r"\Z" if anchored else "")
        object.__setattr__(self, "pattern", re.compile(regex))

    def matches(self, url: str) -> bool:
        """Whether the path (and query) of ``url`` matches this rule's location."""
        return self.pattern.match(_match_target(url)) is not None


def parse_tdmrep(text: str) -> tuple[TdmRule, ...]:
    """The rules of a tdmrep.json document; malformed rules are skipped, a malformed file gives none.

    Each rule needs a string ``location`` and a ``tdm-reservation`` of 1 or 0 (other values are protocol
    errors, which the spec says to read as "unset").
    """
    try:
        document = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(document, list):
        return ()
    rules: list[TdmRule] = []
    for item in document:
        if not isinstance(item, dict):
            continue
        location, value, policy = item.get("location"), item.get("tdm-reservation"), item.get("tdm-policy")
        reserved = tdm_flag(value)
        if not isinstance(location, str) or not location.strip() or reserved is None:
            continue
        rules.append(TdmRule(location, reserved, policy if isinstance(policy, str) else None))
    return tuple(rules)


def tdm_lookup(rules: Sequence[TdmRule], url: str) -> bool | None:
    """The reservation the first matching rule gives ``url`` (the spec's "most specific" is the first), or None."""
    return next((rule.reserved for rule in rules if rule.matches(url)), None)


class TdmRepCache:
    """``/.well-known/tdmrep.json`` per origin, fetched through the caller's client once and cached.

    A 404, any other non-2xx status, a network error, a file larger than ``max_bytes`` (decoded) or in an
    encoding that cannot be read with a bound, or a malformed file all mean "this server does not use the
    file": no rules, no reservation (logged when the file was there but unreadable). At most
    ``max_origins`` origins and about ``cache_bytes`` of parsed rules are kept, least recently used
    dropped first.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_age: float = DAY,
        max_bytes: int = TDMREP_MAX_BYTES,
        fetch_timeout: float = 30.0,
        clock: Clock = time.monotonic,
        max_origins: int = MAX_ORIGINS,
        cache_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self._client = client
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._fetch_timeout = fetch_timeout
        self._cache: OriginCache[tuple[TdmRule, ...]] = OriginCache(
            clock, max_entries=max_origins, max_bytes=cache_bytes
        )

    async def rules(self, url: str) -> tuple[TdmRule, ...]:
        """The rules of ``url``'s origin, in file order."""
        origin = origin_of(url)
        return await self._cache.get(origin, lambda: self._load(origin))

    async def reservation(self, url: str) -> bool | None:
        """True if the file reserves TDM rights on ``url``, False if it says they are not, None if unset."""
        return tdm_lookup(await self.rules(url), url)

    async def tdm_reserved(self, url: str) -> bool:
        """Whether the origin's tdmrep.json reserves TDM rights on ``url``."""
        return await self.reservation(url) is True

    async def _load(self, origin: str) -> tuple[tuple[TdmRule, ...], float, int]:
        url = f"{origin}/.well-known/tdmrep.json"
        try:
            body = await get_capped(self._client, url, max_bytes=self._max_bytes, limit_s=self._fetch_timeout)
        except FetchError as exc:
            log.warning("%s ignored: %s", url, exc.reason)
            return (), self._max_age, ENTRY_BYTES
        except Exception:  # the spec: a file that cannot be had means the server does not use one
            return (), self._max_age, ENTRY_BYTES
        if not 200 <= body.status < 300:
            return (), self._max_age, ENTRY_BYTES
        if body.truncated:
            log.warning("%s ignored: larger than %d bytes", url, self._max_bytes)
            return (), self._max_age, ENTRY_BYTES
        text = body.text
        return parse_tdmrep(text), self._max_age, ENTRY_BYTES + _TDMREP_BYTES_PER_BYTE * len(text)


def tdm_flag(value: object) -> bool | None:
    """1 -> True, 0 -> False (as numbers or strings), anything else -> None ("unset")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
    if value in (1, "1"):
        return True
    if value in (0, "0"):
        return False
    return None
