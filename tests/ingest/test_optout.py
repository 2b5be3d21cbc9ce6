"""citeline.ingest.optout: opt-outs in a response's headers and meta tags."""

from __future__ import annotations

import httpx
import pytest

from citeline.ingest.optout import opt_out_reason, robots_directives, tdm_reservation

# --- opt-outs in the response -------------------------------------------------------------------

PAGE = "<html><head><title>t</title>{meta}</head><body><p>text</p></body></html>"


def page(*metas: tuple[str, str]) -> str:
    return PAGE.format(meta="".join(f'<meta name="{name}" content="{content}">' for name, content in metas))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("noindex", "noindex"),
        ("NoIndex, nofollow", "noindex"),
        ("none", "noindex"),
        ("noai", "noai"),
        ("noimageai", "noimageai"),
        ("noindex, noai", "noai"),
        ("citeline: noindex", "noindex"),
        ("CiteLine: noai, noindex", "noai"),
        ("googlebot: noindex", None),
        ("googlebot: noindex, nofollow, noai", None),  # everything after the prefix is googlebot's
        ("googlebot: noindex, citeline: noai", "noai"),
        ("max-snippet: 20, noindex", "noindex"),
        ("unavailable_after: Wed, 03 Dec 2025 13:09:53 GMT", None),
        ("nofollow, noarchive", None),
        ("all", None),
    ],
)
def test_x_robots_tag(value: str, reason: str | None) -> None:
    assert opt_out_reason("https://a.test/", {"X-Robots-Tag": value}, page()) == reason


def test_repeated_x_robots_tag_headers_keep_their_scope() -> None:
    headers = httpx.Headers([("X-Robots-Tag", "googlebot: noindex"), ("X-Robots-Tag", "noai")])
    assert opt_out_reason("https://a.test/", headers, "") == "noai"
    assert opt_out_reason("https://a.test/", {"x-robots-tag": "googlebot: noindex"}, "") is None


@pytest.mark.parametrize(
    ("metas", "reason"),
    [
        ((("robots", "noindex, follow"),), "noindex"),
        ((("ROBOTS", "noai noimageai"),), "noai"),
        ((("robots", "noimageai"),), "noimageai"),
        ((("citeline", "noindex"),), "noindex"),
        ((("googlebot", "noindex"),), None),
        ((("robots", "index, follow"),), None),
        ((("description", "noindex"),), None),
        ((("tdm-reservation", "1"),), "tdm-reservation"),
        ((("tdm-reservation", "0"),), None),
        ((("tdm-reservation", "yes"),), None),
    ],
)
def test_meta_tags(metas: tuple[tuple[str, str], ...], reason: str | None) -> None:
    assert opt_out_reason("https://a.test/", {}, page(*metas)) == reason


def test_bot_specific_meta_uses_the_given_token() -> None:
    html = page(("citeline-test", "noai"))
    assert opt_out_reason("https://a.test/", {}, html) is None
    assert opt_out_reason("https://a.test/", {}, html, token="citeline-test") == "noai"


def test_html_edge_cases() -> None:
    xhtml = '<?xml version="1.0" encoding="utf-8"?>\n' + page(("robots", "noindex"))
    assert opt_out_reason("https://a.test/", {}, xhtml) == "noindex"
    assert opt_out_reason("https://a.test/", {}, "") is None
    assert opt_out_reason("https://a.test/", {}, "   ") is None
    assert opt_out_reason("https://a.test/", {}, "<p>no meta here</p>") is None
    assert robots_directives({}, page(("robots", "none"))) == {"none", "noindex", "nofollow"}


def test_tdm_header_and_precedence() -> None:
    html_reserved, html_free = page(("tdm-reservation", "1")), page(("tdm-reservation", "0"))
    assert opt_out_reason("https://a.test/", {"tdm-reservation": "1"}, page()) == "tdm-reservation"
    assert opt_out_reason("https://a.test/", {"TDM-Reservation": " 0 "}, page()) is None
    assert opt_out_reason("https://a.test/", {}, page(), tdmrep=True) == "tdm-reservation"
    # tdmrep.json < header < meta
    assert tdm_reservation({"tdm-reservation": "0"}, page(), tdmrep=True) is False
    assert tdm_reservation({"tdm-reservation": "0"}, html_reserved, tdmrep=None) is True
    assert tdm_reservation({"tdm-reservation": "1"}, html_free) is False
    assert tdm_reservation({"tdm-reservation": "2"}, page(), tdmrep=True) is True  # an invalid value is unset
    assert tdm_reservation({}, page()) is None
    # an AI-specific robots directive is named before the TDM reservation, which is named before noindex
    both = {"tdm-reservation": "1", "x-robots-tag": "noindex"}
    assert opt_out_reason("https://a.test/", both, page()) == "tdm-reservation"
    assert opt_out_reason("https://a.test/", {**both, "x-robots-tag": "noai"}, page()) == "noai"
