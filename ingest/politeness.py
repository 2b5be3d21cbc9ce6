"""Crawl politely: robots.txt (RFC 9309), per-host pacing with back-off, and content owners' AI opt-outs.

Everything that goes over the network goes through the ``httpx.AsyncClient`` the caller passes in, so the
caller's timeouts, redirect cap, transport guards and test transports apply to robots.txt and tdmrep.json
exactly as they do to pages. Bodies are read through ``ingest.bounded`` (only encodings it can bound, redirect
bodies never read), and every cache here is bounded in entries and estimated bytes. How the crawler uses this
module, per URL::

    robots = RobotsCache(client, settings.user_agent)
    tdm = TdmRepCache(client)
    pacer = HostPacer(robots=robots)

    if not await robots.allowed(url):                    # 1. robots.txt says no: do not request it
        ...
    response = await fetch_with_retries(send, url, pacer)  # 2. wait the host's turn, send, back off on 429/503
    reason = opt_out_reason(url, response.headers, html,   # 3. owner opted out of AI use: keep nothing
                            token=robots.token, tdmrep=await tdm.reservation(url))
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import string
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Generic, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx
from protego import Protego

from ingest._exceptions import FetchError
from ingest.bounded import ACCEPT_HEADERS, read_prefix, send_following
from ingest.markup import MarkupError, one_tree_at_a_time, parse_html

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds from an arbitrary start (``time.monotonic``); injectable so tests can move time."""
Sleep = Callable[[float], Awaitable[None]]

DAY = 24 * 3600.0
ROBOTS_MAX_BYTES = 500 * 1024
"""RFC 9309 2.5: crawlers must parse at least the first 500 KiB; what follows is ignored."""
TDMREP_MAX_BYTES = 500 * 1024
MAX_ORIGINS = 4096
"""Origins whose robots.txt (or tdmrep.json) a cache keeps at once; the least recently used go first."""
CACHE_MAX_BYTES = 64 << 20
"""Estimated memory a robots.txt or tdmrep.json cache may hold before it drops the least recently used."""
MAX_HOSTS = 10_000
"""Hosts a :class:`HostPacer` remembers turns for; the least recently used go first."""
# Estimated bytes of memory per byte of file once parsed, and per entry. Measured with tracemalloc on
# 500 KiB files of the shortest rules (the worst case): protego ~15, parse_tdmrep ~10.
_ROBOTS_BYTES_PER_BYTE = 16
_TDMREP_BYTES_PER_BYTE = 12
_ENTRY_BYTES = 1024
RETRY_STATUSES = frozenset({429, 503})
DEFAULT_PRODUCT = "citeline"
"""The product token of the default user agent, for the opt-out checks when the caller names none."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")
_T = TypeVar("_T")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, default port left out.

    Raises ValueError for anything that is not an absolute http(s) URL.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def product_token(user_agent: str) -> str:
    """The robots.txt product token of a User-Agent string, lower-cased (RFC 9309 2.2.1).

    ``"citeline/0.1 (+https://example/contact)"`` gives ``"citeline"``: letters, ``_`` and ``-`` up to the
    first other character.
    """
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    if match is None:
        raise ValueError(f"user agent {user_agent!r} does not start with a product token")
    return match.group().lower()


# --------------------------------------------------------------------------------------------------
# Fetching one small file per origin, shared and cached


@dataclass(frozen=True, slots=True)
class _Body:
    status: int
    url: str
    content: bytes
    truncated: bool


async def _get_capped(client: httpx.AsyncClient, url: str, *, max_bytes: int, limit_s: float) -> _Body:
    """GET ``url`` through ``client`` following redirects; read at most ``max_bytes`` of a 2xx body, decoded.

    Raises ``FetchError`` for a body in an encoding that cannot be read with a bound (``ingest.bounded``).
    """
    async with asyncio.timeout(limit_s):
        response = await send_following(
            lambda request: client.send(request, stream=True, follow_redirects=False),
            client.build_request("GET", url, headers=ACCEPT_HEADERS),
            max_redirects=client.max_redirects,
        )
        try:
            body, truncated = await read_prefix(response, max_bytes, url) if response.is_success else (b"", False)
            return _Body(response.status_code, str(response.url), body, truncated)
        finally:
            await response.aclose()


@dataclass(frozen=True, slots=True)
class _Entry(Generic[_T]):
    value: _T
    expires: float
    size: int


@dataclass(slots=True)
class _Loading:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiters: int = 0


class _OriginCache(Generic[_T]):
    """One value per origin, loaded once however many callers ask at the same time, kept until it expires.

    Bounded: past ``max_entries`` origins or ``max_bytes`` (as the loader estimates each value) the least
    recently used are dropped, so a crawl over many origins, or origins serving huge files, cannot grow it
    without limit. The newest entry is always kept. A per-origin lock exists only while a load is awaited.
    """

    def __init__(self, clock: Clock, *, max_entries: int = MAX_ORIGINS, max_bytes: int = CACHE_MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a cache needs room for at least one entry")
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry[_T]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, _Loading] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The estimated bytes the cached values take."""
        return self._bytes

    @property
    def loading(self) -> int:
        """Origins being loaded now (each holds a lock)."""
        return len(self._loading)

    def _fresh(self, origin: str) -> _Entry[_T] | None:
        entry = self._entries.get(origin)
        if entry is None or self._clock() >= entry.expires:
            return None
        self._entries.move_to_end(origin)
        return entry

    def _store(self, origin: str, entry: _Entry[_T]) -> None:
        if (old := self._entries.pop(origin, None)) is not None:
            self._bytes -= old.size
        self._entries[origin] = entry
        self._bytes += entry.size
        while len(self._entries) > 1 and (len(self._entries) > self._max_entries or self._bytes > self._max_bytes):
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.size

    async def get(self, origin: str, load: Callable[[], Awaitable[tuple[_T, float, int]]]) -> _T:
        """The cached value, or ``load()``'s (value, seconds to keep it, estimated bytes) under the origin's lock."""
        if (entry := self._fresh(origin)) is not None:
            return entry.value
        loading = self._loading.setdefault(origin, _Loading())
        loading.waiters += 1
        try:
            async with loading.lock:
                if (entry := self._fresh(origin)) is None:
                    value, keep_for, size = await load()
                    entry = _Entry(value, self._clock() + keep_for, size)
                    self._store(origin, entry)
                return entry.value
        finally:
            loading.waiters -= 1
            if not loading.waiters:
                del self._loading[origin]


# --------------------------------------------------------------------------------------------------
# robots.txt


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
        self._cache: _OriginCache[RobotsRules] = _OriginCache(clock, max_entries=max_origins, max_bytes=cache_bytes)

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
            body = await _get_capped(self._client, robots_url, max_bytes=self._max_bytes, limit_s=self._fetch_timeout)
        except httpx.TooManyRedirects:
            return RobotsRules(robots_url, None, "too many redirects: allow all"), self._max_age, _ENTRY_BYTES
        except FetchError as exc:  # a body that cannot be read with a bound: as good as no answer
            return self._unreachable(robots_url, None, f"unreadable ({exc.reason})")
        except Exception as exc:  # any failure to reach it (network, timeout, a guard in the client) disallows all
            return self._unreachable(robots_url, None, f"unreachable ({type(exc).__name__})")
        if 200 <= body.status < 300:
            text = body.content.decode("utf-8", errors="replace").removeprefix("\ufeff")
            outcome = "parsed"
            if body.truncated:
                text = text.rpartition("\n")[0]
                outcome = f"parsed (its first {self._max_bytes} bytes; the rest ignored)"
            rules = RobotsRules(robots_url, body.status, outcome, parser=Protego.parse(text))
            return rules, self._max_age, _ENTRY_BYTES + _ROBOTS_BYTES_PER_BYTE * len(text)
        if body.status >= 500 or body.status == 429:
            return self._unreachable(robots_url, body.status, f"HTTP {body.status}")
        return RobotsRules(robots_url, body.status, f"HTTP {body.status}: allow all"), self._max_age, _ENTRY_BYTES

    def _unreachable(self, robots_url: str, status: int | None, why: str) -> tuple[RobotsRules, float, int]:
        rules = RobotsRules(robots_url, status, f"{why}: disallow all", disallow_all=True)
        return rules, self._error_max_age, _ENTRY_BYTES


# --------------------------------------------------------------------------------------------------
# Pacing and back-off


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta-seconds or HTTP-date), or None if unreadable.

    ``now`` is the wall-clock time (``time.time()``) an HTTP-date is measured from; a date in the past
    gives 0.
    """
    if value is None or not (value := value.strip()):
        return None
    if re.fullmatch(r"\d+", value, flags=re.ASCII):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(slots=True)
class _HostTurns:
    last_start: float | None = None
    not_before: float = -math.inf


class HostPacer:
    """Spaces requests to one host at least ``min_interval`` seconds apart (or the robots Crawl-delay).

    :meth:`wait` hands out turns in the order it is called; a turn is reserved before sleeping, so
    concurrent callers never share one. :meth:`backoff` pauses the whole host after a 429/503.
    Hosts are keyed by host name (any scheme or port); the turns of at most ``max_hosts`` hosts are
    remembered, the least recently used forgotten first (by then its turn is long past).
    """

    def __init__(
        self,
        *,
        min_interval: float = 1.0,
        robots: RobotsCache | None = None,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        max_hosts: int = MAX_HOSTS,
    ) -> None:
        if max_hosts < 1:
            raise ValueError("max_hosts must be at least 1")
        self.min_interval = min_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._robots = robots
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._max_hosts = max_hosts
        self._hosts: OrderedDict[str, _HostTurns] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hosts)

    def _turns(self, url: str) -> _HostTurns:
        host = urlsplit(url).hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        turns = self._hosts.get(host)
        if turns is None:
            turns = self._hosts[host] = _HostTurns()
            if len(self._hosts) > self._max_hosts:
                self._hosts.popitem(last=False)
        else:
            self._hosts.move_to_end(host)
        return turns

    async def interval(self, url: str) -> float:
        """Seconds between two requests to ``url``'s host: ``min_interval`` or robots.txt's Crawl-delay."""
        if self._robots is None:
            return self.min_interval
        return await self._robots.effective_delay(url, self.min_interval)

    async def wait(self, url: str) -> float:
        """Sleep until it is this request's turn on ``url``'s host; return the seconds slept."""
        interval = await self.interval(url)
        turns = self._turns(url)
        now = self._clock()
        start = max(now, turns.not_before)
        if turns.last_start is not None:
            start = max(start, turns.last_start + interval)
        turns.last_start = start
        delay = start - now
        if delay > 0:
            await self._sleep(delay)
        return max(delay, 0.0)

    def retry_after(self, value: str | None) -> float | None:
        """Seconds a ``Retry-After`` header value asks for, measured on this pacer's wall clock."""
        return parse_retry_after(value, now=self._wall_clock())

    def backoff(self, url: str, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` of a request that got 429 or 503.

        A readable ``Retry-After`` is honoured as given; otherwise exponential back-off with full jitter,
        ``random() * base_backoff * 2**attempt``. Either is capped at ``max_backoff``. The host is paused
        for that long: the next :meth:`wait` on it, by any caller, sleeps until then.
        """
        wanted = self.retry_after(retry_after)
        if wanted is None:
            delay = self._rand() * min(self.max_backoff, self.base_backoff * 2.0 ** min(max(attempt, 0), 62))
        else:
            delay = min(wanted, self.max_backoff)
        turns = self._turns(url)
        turns.not_before = max(turns.not_before, self._clock() + delay)
        return delay


async def fetch_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    url: str,
    pacer: HostPacer,
    *,
    max_retries: int = 3,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
) -> httpx.Response:
    """Wait ``url``'s turn and ``send()``; on 429/503 back off and send again, at most ``max_retries`` times.

    Returns the last response (the caller owns it and closes it): a success, another status, or the
    429/503 that ended the retries. A ``Retry-After`` longer than ``pacer.max_backoff`` ends them at once
    rather than asking again sooner than the server allowed. Exceptions from ``send`` propagate.
    """
    attempt = 0
    while True:
        await pacer.wait(url)
        response = await send()
        if response.status_code not in retry_statuses or attempt >= max_retries:
            return response
        retry_after = response.headers.get("retry-after")
        pacer.backoff(url, attempt, retry_after)
        wanted = pacer.retry_after(retry_after)
        if wanted is not None and wanted > pacer.max_backoff:
            return response
        await response.aclose()
        attempt += 1


# --------------------------------------------------------------------------------------------------
# TDM Reservation Protocol: /.well-known/tdmrep.json

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
        reserved = _tdm_flag(value)
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
        self._cache: _OriginCache[tuple[TdmRule, ...]] = _OriginCache(
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
            body = await _get_capped(self._client, url, max_bytes=self._max_bytes, limit_s=self._fetch_timeout)
        except FetchError as exc:
            log.warning("%s ignored: %s", url, exc.reason)
            return (), self._max_age, _ENTRY_BYTES
        except Exception:  # the spec: a file that cannot be had means the server does not use one
            return (), self._max_age, _ENTRY_BYTES
        if not 200 <= body.status < 300:
            return (), self._max_age, _ENTRY_BYTES
        if body.truncated:
            log.warning("%s ignored: larger than %d bytes", url, self._max_bytes)
            return (), self._max_age, _ENTRY_BYTES
        text = body.content.decode("utf-8", errors="replace").removeprefix("\ufeff")
        return parse_tdmrep(text), self._max_age, _ENTRY_BYTES + _TDMREP_BYTES_PER_BYTE * len(text)


# --------------------------------------------------------------------------------------------------
# Opt-outs in the response: X-Robots-Tag, robots meta, TDMRep header and meta

OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex")
"""Robots directives that make a page off limits to citeline, as reason strings."""
_VALUED_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})
_BOT_NAME = re.compile(r"[a-z0-9_.-]+")
_META_TAG = re.compile(r"<meta\b", re.IGNORECASE)
_WORDS = re.compile(r"[\s,]+")


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive); repeated headers stay apart in ``httpx.Headers``."""
    if isinstance(headers, httpx.Headers):
        return headers.get_list(name)
    return [value for key, value in headers.items() if key.lower() == name]


def x_robots_directives(value: str, token: str) -> set[str]:
    """Directives of one ``X-Robots-Tag`` value that apply to the crawler ``token``, lower-cased.

    ``"noindex, nofollow"`` applies to every crawler; ``"googlebot: noindex, nofollow"`` only to
    googlebot (a bot prefix scopes the directives after it until the next prefix). Valued directives
    such as ``max-snippet: 20`` or ``unavailable_after: <date>`` are skipped.
    """
    token = token.lower()
    found: set[str] = set()
    scope: str | None = None
    for segment in value.lower().split(","):
        name, colon, rest = segment.partition(":")
        name, words = name.strip(), segment
        if colon:
            if name in _VALUED_DIRECTIVES or not _BOT_NAME.fullmatch(name):
                continue
            scope, words = name, rest
        if scope is None or scope == token:
            found.update(words.split())
    return found


@one_tree_at_a_time
def _meta_tags(html: str) -> list[tuple[str, str]]:
    """(lower-cased name, content) of every ``<meta name=... content=...>`` in ``html``."""
    if not html or not _META_TAG.search(html):
        return []
    try:
        tree = parse_html(html)
    except MarkupError:
        return []
    return [
        (str(meta.get("name")).strip().lower(), str(meta.get("content")))
        for meta in tree.xpath("//meta[@name and @content]")
    ]


def robots_directives(headers: Mapping[str, str], html: str, *, token: str = DEFAULT_PRODUCT) -> set[str]:
    """Robots directives for ``token`` from ``X-Robots-Tag`` headers and ``robots``/``<token>`` meta tags.

    ``none`` is expanded to ``noindex`` and ``nofollow``.
    """
    return _robots_directives(headers, _meta_tags(html), token.lower())


def _robots_directives(headers: Mapping[str, str], metas: Iterable[tuple[str, str]], token: str) -> set[str]:
    found: set[str] = set()
    for value in _header_values(headers, "x-robots-tag"):
        found |= x_robots_directives(value, token)
    for name, content in metas:
        if name in ("robots", token):
            found.update(word for word in _WORDS.split(content.lower()) if word)
    if "none" in found:
        found |= {"noindex", "nofollow"}
    return found


def _tdm_flag(value: object) -> bool | None:
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


def tdm_reservation(headers: Mapping[str, str], html: str, *, tdmrep: bool | None = None) -> bool | None:
    """The page's TDM reservation under the TDMRep precedence: tdmrep.json < header < HTML meta.

    ``tdmrep`` is what the origin's tdmrep.json says for the URL (:meth:`TdmRepCache.reservation`).
    Returns True (reserved), False (explicitly not reserved) or None (unset).
    """
    return _tdm_reservation(headers, _meta_tags(html), tdmrep)


def _tdm_reservation(headers: Mapping[str, str], metas: Iterable[tuple[str, str]], tdmrep: bool | None) -> bool | None:
    value = tdmrep
    for header in _header_values(headers, "tdm-reservation")[-1:]:
        if (flag := _tdm_flag(header.split(",")[-1])) is not None:
            value = flag
    for name, content in metas:
        if name == "tdm-reservation" and (flag := _tdm_flag(content)) is not None:
            value = flag
    return value


def opt_out_reason(
    url: str,
    headers: Mapping[str, str],
    html: str,
    *,
    token: str = DEFAULT_PRODUCT,
    tdmrep: bool | None = None,
) -> str | None:
    """Why the owner of the page at ``url`` does not want citeline to keep it, or None if nothing says so.

    The reason is the first that applies of ``"noai"``, ``"noimageai"`` (``X-Robots-Tag`` or
    ``robots``/``<token>`` meta), ``"tdm-reservation"`` (TDMRep: ``tdmrep`` from the origin's
    tdmrep.json, overridden by a ``tdm-reservation`` header, overridden by the meta tag) and
    ``"noindex"`` (including ``none``). Directives scoped to another bot do not count. ``url`` is the
    page's address; the decision reads only ``headers`` (any Mapping; pass ``httpx.Headers`` to keep
    repeated headers apart) and ``html``.
    """
    metas = _meta_tags(html)
    directives = _robots_directives(headers, metas, token.lower())
    for directive in OPT_OUT_DIRECTIVES[:2]:
        if directive in directives:
            return directive
    if _tdm_reservation(headers, metas, tdmrep):
        return "tdm-reservation"
    return "noindex" if "noindex" in directives else None
