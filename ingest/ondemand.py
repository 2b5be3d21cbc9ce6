"""Single pages fetched on demand (at question time) with every rule a crawl applies.

:class:`OnDemandFetcher` is the crawler's safe client without the crawl: the SSRF guard (checked
before any request and again on every connection and redirect), robots.txt, the owner's AI
opt-outs (``noindex``/``noai``/TDMRep), per-host pacing, content-type and decoded-size caps and
timeouts, all from :class:`IngestSettings` (whose ``live_allow_hosts``, not the crawler's
``allow_hosts``, opens private addresses). :func:`extract_page` turns what it fetched into the
page record and passages an index stores, as the pipeline does.
"""

from __future__ import annotations

import httpx

from citeline.indexes import PageRecord, PassageRecord
from citeline.ingest._settings import IngestSettings
from citeline.ingest._wiring import settings_client, settings_limits, settings_politeness
from citeline.ingest.chunk import ChunkSizes, chunk
from citeline.ingest.documents import extract_fetched
from citeline.ingest.fetch import Crawler, FetchedPage, NotModified
from citeline.ingest.pipeline import page_record
from citeline.ingest.safety import AddressPolicy, BlockedAddressError, check_url
from citeline.ingest.scope import canonical

Validators = tuple[str | None, str | None]
"""(ETag, Last-Modified) of a stored copy: the fetch becomes a conditional GET."""


class OnDemandFetcher:
    """Fetch one page at a time through the guarded client; robots.txt and TDMRep are cached.

    ``timeout_s`` caps one page (robots.txt included); ``per_host_delay`` spaces requests to one
    host (a larger robots.txt Crawl-delay wins). Answers to 429/503 are not retried: a question
    cannot wait for a back-off. Close it with :meth:`aclose`.
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        timeout_s: float,
        per_host_delay: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Not ``allow_hosts``: a network opened for ingest stays closed to question-time fetches.
        self.policy = AddressPolicy.from_strings(settings.live_allow_hosts)
        self._client = settings_client(settings, self.policy, transport=transport, timeout_s=timeout_s)
        polite = settings_politeness(settings, self._client, per_host_delay=per_host_delay, fetch_timeout=timeout_s)
        self._robots, self._tdm, self._pacer = polite.robots, polite.tdm, polite.pacer
        # Answers to 429/503 are not retried: a question cannot wait for a back-off.
        self._limits = settings_limits(
            settings, max_pages=1, max_depth=0, per_host_delay=per_host_delay, total_timeout=timeout_s, max_retries=0
        )

    def check(self, url: str) -> str:
        """The canonical URL, or :class:`BlockedAddressError` for one that must never be fetched
        (scheme, credentials, a private or special address literal), before any request."""
        check_url(url, self.policy)
        normal = canonical(url)
        check_url(normal, self.policy)
        return normal

    async def fetch(self, url: str, *, validators: Validators | None = None) -> FetchedPage | NotModified:
        """Fetch one page (a conditional GET with ``validators``); raises ``FetchError`` with a
        readable reason and kind (``blocked``, ``robots``, ``opt_out``, ``gone``...)."""

        def stored(_: str) -> Validators | None:
            return validators

        crawler = Crawler(
            self._client,
            self._limits,
            robots=self._robots,
            tdm=self._tdm,
            pacer=self._pacer,
            policy=self.policy,
            validators=stored if validators is not None else None,
        )
        return await crawler.fetch(url)

    async def aclose(self) -> None:
        await self._client.aclose()


def extract_page(fetched: FetchedPage, *, url: str, sizes: ChunkSizes) -> tuple[PageRecord, list[PassageRecord]]:
    """The page record (under ``url``, the address citations link to) and its passages;
    ``ExtractionError`` when the page has no main text."""
    extracted = extract_fetched(fetched, url)
    return page_record(fetched, extracted, url=url, chunking=sizes.signature), chunk(
        extracted.text, extracted.headings, sizes
    )


__all__ = ["BlockedAddressError", "OnDemandFetcher", "Validators", "extract_page"]
