"""citeline.ingest.feeds: item links of RSS and Atom feeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from citeline.ingest import FetchError
from citeline.ingest.feeds import feed_urls
from tests.ingest.sites import Site

RSS = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>t</title><link>https://h.example/</link>
<item><title>1</title><link>/posts/one.html</link></item>
<item><title>2</title><link>https://h.example/posts/two.html</link></item>
<item><title>dup</title><link>https://h.example/posts/one.html</link></item>
<item><title>guid</title><guid>https://h.example/posts/three.html</guid></item>
<item><title>no permalink</title><guid isPermaLink="false">tag:h.example,1</guid></item>
<item><title>js</title><link>javascript:alert(1)</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://h.example/blog/">
<title>t</title><link rel="self" href="https://h.example/atom.xml"/>
<entry><title>1</title><link rel="enclosure" href="a.mp3"/>
  <link rel="alternate" type="text/html" href="a.html"/></entry>
<entry xml:base="2024/"><title>2</title><link href="b.html"/></entry>
<entry><title>3</title><link rel="alternate" href="https://other.example/c"/></entry>
</feed>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://h.example/"><title>t</title><link>https://h.example/</link></channel>
<item rdf:about="https://h.example/r1"><title>1</title><link>https://h.example/r1</link></item>
<item rdf:about="https://h.example/r2"><title>2</title></item>
</rdf:RDF>"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            RSS,
            [
                "https://h.example/posts/one.html",
                "https://h.example/posts/two.html",
                "https://h.example/posts/three.html",
            ],
            id="rss2",
        ),
        pytest.param(
            ATOM,
            ["https://h.example/blog/a.html", "https://h.example/blog/2024/b.html", "https://other.example/c"],
            id="atom",
        ),
        pytest.param(RDF, ["https://h.example/r1", "https://h.example/r2"], id="rss1-rdf"),
    ],
)
async def test_feed_links(body: bytes, expected: list[str]) -> None:
    site = Site({"/feed": (body, {"content-type": "application/xml"})})
    async with site.client() as client:
        assert await feed_urls(client, "https://h.example/feed", max_urls=10) == expected
        assert await feed_urls(client, "https://h.example/feed", max_urls=1) == expected[:1]


async def test_feed_entities_are_not_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    feed = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{secret.as_uri()}"><!ENTITY y "expanded">]>'
        "<rss><channel><item><link>https://h.example/&x;</link></item>"
        "<item><link>https://h.example/&y;</link></item></channel></rss>"
    ).encode()
    site = Site({"/feed": feed})
    async with site.client() as client:
        urls = await feed_urls(client, "https://h.example/feed", max_urls=10)
    assert not any("SECRET" in u or "expanded" in u for u in urls)


async def test_not_a_feed() -> None:
    site = Site({"/page": (b"<html><body><item>x</item></body></html>", {"content-type": "text/html"})})
    async with site.client() as client:
        with pytest.raises(FetchError, match="not an RSS or Atom feed"):
            await feed_urls(client, "https://h.example/page", max_urls=10)
        with pytest.raises(FetchError, match="HTTP 404"):
            await feed_urls(client, "https://h.example/nothing", max_urls=10)
