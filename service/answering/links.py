"""Links in generated and quoted text: what counts as a URL, and which ones a page may not plant."""

from __future__ import annotations

import re
from collections.abc import Sequence

from citeline.indexes import SearchHit
from citeline.service.answering.prompt import neutralise

# Anything a reader could follow as a link: a URL with any scheme, "www." or "//" forms, and a
# bare domain ("evil.example/login", "admin@evil.example"). A bare name counts when it ends in a
# top-level domain that is rarely also a code attribute ("logging.info", "os.link", "django.test"
# and "file.py" must survive), or in any letters followed by a path.
_URL_TAIL = r"[^\s<>()\[\]\"'`]"
_HOST = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
_TLDS = (
    "com|net|org|edu|gov|mil|io|co|ai|dev|xyz|online|example|invalid|onion|localhost|"
    "ru|cn|uk|de|fr|jp|us|ca|au|nl|eu|ly|gg|tk|ml|ga|cf|gq|tv|ws|su|pw"
)
URL_PATTERN = re.compile(
    rf"\b[a-z][a-z0-9+.-]{{1,15}}://{_URL_TAIL}+"
    rf"|(?<![\w.-])(?:www\.|//(?=\w)){_URL_TAIL}+"
    rf"|(?<![\w./-]){_HOST}(?:{_TLDS})(?![\w-])(?::\d{{1,5}})?(?:/{_URL_TAIL}*)?"
    rf"|(?<![\w./-]){_HOST}[a-z]{{2,24}}(?::\d{{1,5}})?/(?=[a-z_~%-]){_URL_TAIL}*",
    re.I,
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?=//)|^//", re.I)


def has_words(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2}", text))


def quotable(text: str, hits: Sequence[SearchHit], min_chars: int) -> bool:
    """Page words citeline may show as a quote of its own accord: long enough to be a sentence, and
    neither planting a link to a page it did not retrieve nor addressing a model (a quote the
    generator's text would have had removed or neutralised must not come back as an extract)."""
    return (
        len(text) >= min_chars
        and has_words(text)
        and not remove_foreign_urls(text, hits)[1]
        and neutralise(text, anywhere=True) == text
    )


def bare_url(url: str) -> str:
    """``url`` without scheme, fragment and trailing slash, lower-cased: the form all spellings share."""
    return _SCHEME.sub("", url.split("#", 1)[0]).lstrip("/").rstrip("/").lower()


def remove_foreign_urls(text: str, hits: Sequence[SearchHit]) -> tuple[str, list[str]]:
    """Remove URLs and domains that are not one of the retrieved pages (or its host): page text
    may try to plant links."""
    allowed = {bare_url(h.url) for h in hits}
    allowed |= {b.split("/", 1)[0] for b in allowed}
    allowed |= {a.removeprefix("www.") for a in allowed}
    removed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        url = match.group().rstrip(".,;:!?")
        if bare_url(url) in allowed:
            return match.group()
        removed.append(url)
        return "[link removed]" + match.group()[len(url) :]

    return URL_PATTERN.sub(replace, text), removed
