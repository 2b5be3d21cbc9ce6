"""Markup parsing: one parse for every stage, and libxml2 never entered by two threads at once."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

import pytest
import trafilatura

from citeline.ingest.feeds import _feed_links
from citeline.ingest.markup import MarkupError, parse_html
from citeline.ingest.optout import robots_directives
from citeline.ingest.scope import extract_links

PAGE = (
    "<html><head><title>T</title><meta name='robots' content='noindex'></head><body>"
    + "<p>Some words of a paragraph long enough to be main text for the extractor to keep.</p>" * 20
    + "<a href='/a.html'>a</a></body></html>"
)
# ``ingest.extract`` the package re-exports is the function; the stage is its module.
extract_stage = importlib.import_module("citeline.ingest.extract")
FEED = b"<rss><channel><item><link>https://example.org/a</link></item></channel></rss>"


def test_xml_declaration_is_dropped_and_unparsable_markup_says_why() -> None:
    tree = parse_html('<?xml version="1.0" encoding="UTF-8"?><html><body><a href="x">x</a></body></html>')
    assert tree.xpath("//a/@href") == ["x"]
    with pytest.raises(MarkupError, match="unparsable HTML"):
        parse_html("")


@pytest.mark.parametrize(
    "other_stage",
    [
        pytest.param(lambda: extract_links(PAGE, "https://example.org/"), id="links"),
        pytest.param(lambda: robots_directives({}, PAGE), id="meta-tags"),
        pytest.param(lambda: extract_stage.page_license(PAGE, "https://example.org/"), id="license"),
        pytest.param(lambda: _feed_links(FEED, "https://example.org/feed", max_urls=10), id="feed"),
    ],
)
def test_no_stage_parses_while_the_extractor_is_inside_libxml2(
    monkeypatch: pytest.MonkeyPatch, other_stage: Callable[[], object]
) -> None:
    """A resumed ingest aborted (``free(): invalid pointer``) when the crawler parsed links on its
    event loop while trafilatura pruned a tree on a worker thread: every stage now waits its turn."""
    inside = threading.Event()
    release = threading.Event()
    real_extraction = trafilatura.bare_extraction

    def held_extraction(*args: object, **kwargs: object) -> object:
        inside.set()
        assert release.wait(10)
        return real_extraction(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trafilatura, "bare_extraction", held_extraction)
    extractor = threading.Thread(target=extract_stage.extract, args=(PAGE, "https://example.org/"))
    extractor.start()
    assert inside.wait(10)
    other_done = threading.Event()

    def run_other() -> None:
        other_stage()
        other_done.set()

    other = threading.Thread(target=run_other)
    other.start()
    try:
        assert not other_done.wait(0.5), "a second thread entered libxml2 while the extractor was in it"
    finally:
        release.set()
        extractor.join(10)
        other.join(10)
    assert other_done.is_set(), "the waiting stage runs once the extractor is done"
