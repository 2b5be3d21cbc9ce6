"""Stage 3: cut a page's text into passages that keep their character offsets.

A passage is always ``text[start:end]`` of the page's extracted text, so a citation can point at
an exact span of the page. Passages follow the page's structure: a section heading starts a new
passage (unless the one before is still too short to stand alone), lines are packed up to a target
length, and a line longer than the hard cap is split at sentence ends (or, failing that, words).
A form feed (a PDF page's end, ``ingest.pdf``) always ends a passage: a passage, and every quote
cut from it, lies on one page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from citeline.indexes import PassageRecord

_WORD = re.compile(r"\S+")
PAGE_BREAK = "\f"
"""Ends a PDF page in the text (``ingest.pdf`` imports it from here: the chunker is the lower layer)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


#: Bump when the cutting rules change, so that re-ingesting re-cuts unchanged pages.
CHUNKER_VERSION = 2


@dataclass(frozen=True, slots=True)
class ChunkSizes:
    target_words: int = 120
    max_words: int = 180
    min_words: int = 25

    @property
    def signature(self) -> str:
        return f"v{CHUNKER_VERSION}:{self.target_words}/{self.max_words}/{self.min_words}"


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    words: int
    is_heading: bool


def _lines(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for line in text.split("\n"):
        end = start + len(line)
        if line.strip():
            yield start, end
        start = end + 1


def _split_long(text: str, start: int, end: int, sizes: ChunkSizes) -> Iterator[_Unit]:
    """Split ``text[start:end]`` into pieces of at most ``max_words`` words."""
    piece_start = start
    words = 0
    cut_points = [m.start() for m in _SENTENCE_END.finditer(text, start, end)] + [end]
    previous = start
    for cut in cut_points:
        sentence_words = len(_WORD.findall(text, previous, cut))
        if words and words + sentence_words > sizes.target_words:
            yield _Unit(piece_start, previous, words, False)
            piece_start = _skip_space(text, previous)
            words = 0
        if sentence_words > sizes.max_words:
            # One enormous "sentence" (a code listing, a table row): cut at word boundaries.
            matches = list(_WORD.finditer(text, piece_start, cut))
            for i in range(0, len(matches), sizes.target_words):
                group = matches[i : i + sizes.target_words]
                yield _Unit(group[0].start(), group[-1].end(), len(group), False)
            piece_start = _skip_space(text, cut)
            words = 0
        else:
            words += sentence_words
        previous = cut
    if words:
        yield _Unit(piece_start, end, words, False)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def chunk(text: str, headings: frozenset[str] = frozenset(), sizes: ChunkSizes | None = None) -> list[PassageRecord]:
    """Cut ``text`` into passages whose ``start``/``end`` index into ``text``."""
    sizes = sizes or ChunkSizes()
    units: list[_Unit] = []
    for start, end in _lines(text):
        line = text[start:end]
        words = len(_WORD.findall(line))
        if line.strip() in headings:
            units.append(_Unit(start, end, words, True))
        elif words <= sizes.max_words:
            units.append(_Unit(start, end, words, False))
        else:
            units.extend(_split_long(text, start, end, sizes))

    passages: list[PassageRecord] = []
    current: list[_Unit] = []
    current_words = 0
    heading = ""
    passage_heading = ""

    def flush() -> None:
        nonlocal current, current_words
        if current:
            start, end = current[0].start, current[-1].end
            passages.append(PassageRecord(start=start, end=end, text=text[start:end], heading=passage_heading))
        current, current_words = [], 0

    for unit in units:
        if current and PAGE_BREAK in text[current[-1].end : unit.start]:
            flush()
        if unit.is_heading:
            if current_words >= sizes.min_words:
                flush()
            heading = text[unit.start : unit.end].strip()
        elif (
            current
            and current_words + unit.words > sizes.target_words
            and (current_words >= sizes.min_words or current_words + unit.words > sizes.max_words)
        ):
            flush()
        if not current:
            passage_heading = heading
        current.append(unit)
        current_words += unit.words
    flush()
    return passages
