"""Async streams of crawl items from any source: several chained into one, or a blocking iterator (a
directory walk, a WARC file) read in a worker thread. Closing a stream closes what it reads from."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from citeline.ingest.fetch import CrawlItem


async def aclose(source: object) -> None:
    """Close an async generator (or anything with ``aclose``); other iterables have nothing to close."""
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


async def chain(*sources: AsyncIterable[CrawlItem]) -> AsyncIterator[CrawlItem]:
    """The items of each source in turn; closing the chain closes every source (``async for`` would not)."""
    try:
        for source in sources:
            async for item in source:
                yield item
    finally:
        for source in sources:
            await aclose(source)


async def iterate(pages: Iterable[CrawlItem]) -> AsyncIterator[CrawlItem]:
    """An async source over a blocking iterator (a directory walk, a WARC file), read in a thread.

    Closing it closes the iterator, so a WARC generator closes its file at once.
    """
    iterator = iter(pages)
    sentinel = object()
    try:
        while (item := await asyncio.to_thread(next, iterator, sentinel)) is not sentinel:
            yield item  # type: ignore[misc] # the sentinel is the only non-item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # A cancelled read may still be running in its thread (a generator then refuses to be
            # closed); that iterator is closed when the thread lets go of it and it is collected.
            with contextlib.suppress(ValueError):
                close()
