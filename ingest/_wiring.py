"""Settings turned into the objects a crawl runs with: the HTTP client, the crawl's limits and its
politeness helpers. The ingest runner and on-demand fetching both build theirs here, so one setting
means the same thing in both."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from citeline.ingest._settings import IngestSettings
from citeline.ingest.fetch import CrawlLimits, make_client
from citeline.ingest.pacing import HostPacer
from citeline.ingest.robots import RobotsCache
from citeline.ingest.safety import AddressPolicy
from citeline.ingest.tdmrep import TdmRepCache

_DEFAULT_FETCH_TIMEOUT = 30.0
"""Seconds robots.txt and tdmrep.json may take when the caller sets no tighter bound."""


def settings_client(
    settings: IngestSettings,
    policy: AddressPolicy,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float | None = None,
) -> httpx.AsyncClient:
    """The guarded client of :func:`~ingest.fetch.make_client` as the settings configure it;
    ``timeout_s`` lowers the connect and read timeouts to fit a tighter budget."""
    bound = timeout_s if timeout_s is not None else float("inf")
    return make_client(
        user_agent=settings.user_agent,
        connect_timeout=min(settings.connect_timeout, bound),
        read_timeout=min(settings.read_timeout, bound),
        max_redirects=settings.max_redirects,
        concurrency=settings.concurrency,
        transport=transport,
        policy=policy,
    )


def settings_limits(
    settings: IngestSettings,
    *,
    max_pages: int,
    max_depth: int,
    per_host_delay: float | None = None,
    total_timeout: float | None = None,
    max_retries: int | None = None,
) -> CrawlLimits:
    """The crawl limits the settings configure; the keywords override them for one kind of fetch."""
    return CrawlLimits(
        max_pages=max_pages,
        max_depth=max_depth,
        concurrency=settings.concurrency,
        per_host_delay=settings.per_host_delay if per_host_delay is None else per_host_delay,
        max_page_bytes=settings.max_page_bytes,
        total_timeout=settings.total_timeout if total_timeout is None else total_timeout,
        max_retries=settings.max_retries if max_retries is None else max_retries,
    )


@dataclass(frozen=True, slots=True)
class Politeness:
    """robots.txt (None when the settings turn it off), tdmrep.json and the host pacer of one client."""

    robots: RobotsCache | None
    tdm: TdmRepCache
    pacer: HostPacer


def settings_politeness(
    settings: IngestSettings,
    client: httpx.AsyncClient,
    *,
    per_host_delay: float | None = None,
    fetch_timeout: float = _DEFAULT_FETCH_TIMEOUT,
) -> Politeness:
    """The politeness helpers over ``client``; ``fetch_timeout`` bounds one robots.txt or tdmrep.json."""
    robots = RobotsCache(client, settings.user_agent, fetch_timeout=fetch_timeout) if settings.respect_robots else None
    delay = settings.per_host_delay if per_host_delay is None else per_host_delay
    return Politeness(
        robots, TdmRepCache(client, fetch_timeout=fetch_timeout), HostPacer(min_interval=delay, robots=robots)
    )
