"""robots.txt (RFC 9309): fetched once per origin through the caller's client, cached, and matched
with protego. :class:`RobotsCache` says whether a URL may be fetched, its Crawl-delay and Sitemap lines."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
from protego import Protego

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

ROBOTS_MAX_BYTES = 500 * 1024
"""RFC 9309 2.5: crawlers must parse at least the first 500 KiB; what follows is ignored."""
# Estimated bytes of memory per byte of file once parsed. Measured with tracemalloc on 500 KiB files
# of the shortest rules (the worst case): protego ~15.
_ROBOTS_BYTES_PER_BYTE = 16
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")


def product_token(user_agent: str) -> str:
    """The robots.txt product token of a User-Agent string, lower-cased (RFC 9309 2.2.1).

    ``"citeline/0.1 (+https://example/contact)"`` gives ``"citeline"``: letters, ``_`` and ``-`` up to the
    first other character.
    """
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    if match is None:
        raise ValueError(f"user agent {user_agent!r} does not start with a product token")
    return match.group().lower()


@dataclass(frozen=True, slots=True, eq=False)
class RobotsRules:
    """One origin's robots.txt as fetched, or what its absence means (RFC 9309 2.3.1)."""

    url: str
    """The robots.txt URL asked for."""
    status: int | None
    """The final HTTP status; None when no response came."""
    outcome: str
    """Why these rules, for logs and failure reasons: ``"parsed"``, ``"HTTP 404: allow all"``, ..."""
    parser: Protego | None = None
    """The parsed file; None when everything is allowed or disallowed."""
    disallow_all: bool = False
    """True when robots.txt was unreachable (5xx, 429, network error): nothing may be fetched."""

    def allowed(self, url: str, token: str) -> bool:
        """Whether the crawler whose product token is ``token`` may fetch ``url``."""
        if self.disallow_all:
            return False
        return self.parser is None or self.parser.can_fetch(url, token)

    def crawl_delay(self, token: str) -> float | None:
        """The ``Crawl-delay`` of the group that applies to ``token``, in seconds, if any."""
        return None if self.parser is None else self.parser.crawl_delay(token)

    def sitemaps(self) -> list[str]:
        """The ``Sitemap:`` URLs, made absolute against the robots.txt URL."""
        return [] if self.parser is None else [urljoin(self.url, s) for s in self.parser.sitemaps]


class RobotsCache:
    """robots.txt per origin: fetched through the caller's client once, shared, and kept ``max_age`` seconds.

    Outcomes of the fetch (redirects followed by the client, at most its ``max_redirects``):

    * 2xx: the first ``max_bytes`` (decoded) are parsed (a cut last line is dropped);
    * 4xx other than 429, or too many redirects: the file is "unavailable", everything is allowed;
    * 5xx, 429, a network error, a timeout, or a body in an encoding that cannot be read with a bound
      (brotli, which was not asked for): "unreachable", everything is disallowed. These are kept only
      ``error_max_age`` seconds, so that a host that was down for a moment is asked again later in a run.

    At most ``max_origins`` origins and about ``cache_bytes`` of parsed rules are kept (least recently used
    dropped first, to be fetched again when next needed).

    Matching follows protego (RFC 9309: longest match wins, Allow wins a tie, ``*`` and ``$``); the group
    is chosen by the product token of ``user_agent``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        user_agent: str,
        *,
        max_age: float = DAY,
        error_max_age: float = 600.0,
        max_bytes: int = ROBOTS_MAX_BYTES,
        fetch_timeout: float = 30.0,
        clock: Clock = time.monotonic,
        max_origins: int = MAX_ORIGINS,
        cache_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        self.token = product_token(user_agent)
        """The product token groups are matched against (``citeline``)."""
        self._client = client
        self._max_age = max_age
        self._error_max_age = min(error_max_age, max_age)
        self._max_bytes = max_bytes
        self._fetch_timeout = fetch_timeout
        self._cache: OriginCache[RobotsRules] = OriginCache(clock, max_entries=max_origins, max_bytes=cache_bytes)

    async def rules(self, url: str) -> RobotsRules:
        """The rules of ``url``'s origin, fetching robots.txt if none are cached or they expired."""
        origin = origin_of(url)
        return await self._cache.get(origin, lambda: self._load(origin))

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets this crawler fetch ``url``."""
        return (await self.rules(url)).allowed(url, self.token)

    async def crawl_delay(self, url: str) -> float | None:
        """The ``Crawl-delay`` (seconds) robots.txt sets for this crawler on ``url``'s origin, if any."""
        return (await self.rules(url)).crawl_delay(self.token)

    async def sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` URLs listed in the robots.txt of ``url``'s origin."""
        return (await self.rules(url)).sitemaps()

    async def effective_delay(self, url: str, default_delay: float) -> float:
        """Seconds to leave between two requests to ``url``'s host: ``max(default_delay, Crawl-delay)``."""
        return max(default_delay, await self.crawl_delay(url) or 0.0)

    async def _load(self, origin: str) -> tuple[RobotsRules, float, int]:
        robots_url = f"{origin}/robots.txt"
        try:
            body = await get_capped(self._client, robots_url, max_bytes=self._max_bytes, limit_s=self._fetch_timeout)
        except httpx.TooManyRedirects:
            return RobotsRules(robots_url, None, "too many redirects: allow all"), self._max_age, ENTRY_BYTES
        except FetchError as exc:  # a body that cannot be read with a bound: as good as no answer
            return self._unreachable(robots_url, None, f"unreadable ({exc.reason})")
        except Exception as exc:  # any failure to reach it (network, timeout, a guard in the client) disallows all
            return self._unreachable(robots_url, None, f"unreachable ({type(exc).__name__})")
        if 200 <= body.status < 300:
            text = body.text
            outcome = "parsed"
            if body.truncated:
                text = text.rpartition("\n")[0]
                outcome = f"parsed (its first {self._max_bytes} bytes; the rest ignored)"
            rules = RobotsRules(robots_url, body.status, outcome, parser=Protego.parse(text))
            return rules, self._max_age, ENTRY_BYTES + _ROBOTS_BYTES_PER_BYTE * len(text)
        if body.status >= 500 or body.status == 429:
            return self._unreachable(robots_url, body.status, f"HTTP {body.status}")
        return RobotsRules(robots_url, body.status, f"HTTP {body.status}: allow all"), self._max_age, ENTRY_BYTES

    def _unreachable(self, robots_url: str, status: int | None, why: str) -> tuple[RobotsRules, float, int]:
        rules = RobotsRules(robots_url, status, f"{why}: disallow all", disallow_all=True)
        return rules, self._error_max_age, ENTRY_BYTES
