"""Turn the generator's ``[n]`` markers into checked, span-level citations.

The generator cites whole passages; a reader wants the sentence that backs the claim. For each
cited passage this module picks the passage's span that best matches the answer sentence and
reports it with offsets into the page text and a ``#:~:text=`` link that opens the page at it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import sentencex

from citeline.indexes import stem_word, stopwords

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_MARKER_RUN = re.compile(r"^(?:\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    """Offset into the passage text."""
    end: int
    text: str


@dataclass(slots=True)
class ParsedSentence:
    text: str
    """The sentence without its markers."""
    markers: list[int] = field(default_factory=list)
    """Source numbers as written by the generator (1-based), valid ones only, in order."""
    invalid_markers: list[int] = field(default_factory=list)
    is_code: bool = False


ANSWER_FRAME_WORDS = frozenset(
    [
        "about",
        "also",
        "been",
        "being",
        "can",
        "could",
        "did",
        "do",
        "does",
        "done",
        "e",
        "eg",
        "else",
        "etc",
        "from",
        "g",
        "he",
        "her",
        "here",
        "his",
        "how",
        "i",
        "ie",
        "its",
        "just",
        "like",
        "may",
        "me",
        "might",
        "must",
        "my",
        "one",
        "only",
        "our",
        "over",
        "see",
        "shall",
        "she",
        "should",
        "so",
        "than",
        "them",
        "those",
        "too",
        "use",
        "used",
        "uses",
        "using",
        "very",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "would",
        "yes",
        "you",
        "your",
    ]
)
"""Words that frame an answer rather than state a fact ("you can use", "see also", "e.g."): the
checker drops them on top of BM25's stop words, so "Use json.dump() to..." is not held to a source
saying "use". BM25 keeps several of them ("how", "can"), which match the headings that answer."""


@functools.cache
def checker_stopwords() -> frozenset[str]:
    """BM25's stop words (bm25s) and :data:`ANSWER_FRAME_WORDS`."""
    return stopwords() | ANSWER_FRAME_WORDS


def _stem(word: str) -> str:
    """Snowball-stemmed, as BM25 stems, so "rows" meets "row" and "writes" meets "write"; names
    (dotted, underscored), numbers and short words stay as written."""
    if "." in word or "_" in word or word.isdigit() or len(word) <= 3:
        return word
    return stem_word(word)


def content_tokens(text: str) -> set[str]:
    """Lower-cased, lightly stemmed content words, numbers and identifiers (``json.load`` also
    gives ``json`` and ``load``)."""
    tokens: set[str] = set()
    for match in _TOKEN.finditer(text):
        token = match.group().lower()
        if token in checker_stopwords() or (len(token) < 2 and not token.isdigit()):
            continue
        token = _stem(token)
        tokens.add(token)
        if "." in token:
            tokens.update(part for part in token.split(".") if part not in checker_stopwords() and len(part) > 1)
    return tokens


def _markers(text: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(text) for n in re.split(r"\s*[,;]\s*", group)]


_MARKER_LIST = re.compile(r"\[\d{1,3}\](?:\s*[,;]?\s*(?:and|&)?\s*\[\d{1,3}\])+")


def _strip_markers(text: str) -> str:
    text = _MARKER_LIST.sub("", text)  # "[1], [2] and [3]" goes as a whole, separators included
    text = _MARKER.sub("", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _segments(text: str) -> list[tuple[str, bool]]:
    """Prose sentences and fenced code blocks, in order."""
    out: list[tuple[str, bool]] = []
    position = 0
    for fence in _FENCE.finditer(text):
        out.extend((s, False) for s in sentencex.segment("en", text[position : fence.start()]) if s.strip())
        out.append((fence.group(), True))
        position = fence.end()
    out.extend((s, False) for s in sentencex.segment("en", text[position:]) if s.strip())
    return out


def parse_answer(text: str, source_count: int) -> list[ParsedSentence]:
    """Split an answer into sentences and their source markers.

    Markers the model put at the start of a sentence (``... fact. [2] Next``) belong to the
    sentence before; a marker outside ``1..source_count`` is dropped and remembered as invalid.
    """
    sentences: list[ParsedSentence] = []
    for raw, is_code in _segments(text):
        segment = raw.strip()
        leading = _MARKER_RUN.match(segment) if not is_code else None
        if leading and sentences:
            for number in _markers(leading.group()):
                _add_marker(sentences[-1], number, source_count)
            segment = segment[leading.end() :].strip()
        if not segment:
            continue
        sentence = ParsedSentence(text=segment if is_code else _strip_markers(segment), is_code=is_code)
        if not is_code:
            for number in _markers(segment):
                _add_marker(sentence, number, source_count)
        if sentence.text and re.search(r"\w", sentence.text):
            sentences.append(sentence)
        elif sentences:
            sentences[-1].markers.extend(m for m in sentence.markers if m not in sentences[-1].markers)
    return sentences


def _add_marker(sentence: ParsedSentence, number: int, source_count: int) -> None:
    if 1 <= number <= source_count:
        if number not in sentence.markers:
            sentence.markers.append(number)
    else:
        sentence.invalid_markers.append(number)


def passage_spans(text: str) -> list[Span]:
    """Sentences of a passage (line by line, then by sentence) with offsets into it."""
    spans: list[Span] = []
    line_start = 0
    for line in text.split("\n"):
        cursor = 0
        for sentence in sentencex.segment("en", line) if line.strip() else []:
            stripped = sentence.strip()
            if not stripped:
                continue
            found = line.find(stripped, cursor)
            if found < 0:
                continue
            cursor = found + len(stripped)
            spans.append(Span(line_start + found, line_start + cursor, stripped))
        line_start += len(line) + 1
    return spans


def coverage_of(claim: str, text: str) -> float:
    """The share of ``claim``'s content tokens that ``text`` holds (0 for a claim with none)."""
    wanted = content_tokens(claim)
    return len(wanted & content_tokens(text)) / len(wanted) if wanted else 0.0


def best_span(claim: str, passage_text: str) -> tuple[Span, float]:
    """The passage span sharing the most content with ``claim``, and the share of the claim's
    content tokens it covers (0..1). Adjacent spans are joined when they add coverage."""
    spans = passage_spans(passage_text)
    if not spans:
        return Span(0, len(passage_text), passage_text), 0.0
    wanted = content_tokens(claim)
    if not wanted:
        return spans[0], 0.0

    def coverage(tokens: set[str]) -> float:
        return len(wanted & tokens) / len(wanted)

    token_sets = [content_tokens(s.text) for s in spans]
    best = max(range(len(spans)), key=lambda i: (coverage(token_sets[i]), -i))
    start = end = best
    covered = set(token_sets[best])
    # Grow to a neighbour while it covers claim tokens the span lacks (at most three sentences).
    while end - start < 2:
        gains = []
        if start > 0:
            gains.append((len((token_sets[start - 1] & wanted) - covered), start - 1))
        if end + 1 < len(spans):
            gains.append((len((token_sets[end + 1] & wanted) - covered), end + 1))
        gain, neighbour = max(gains, default=(0, -1))
        if gain <= 0:
            break
        covered |= token_sets[neighbour]
        start, end = min(start, neighbour), max(end, neighbour)
    span = Span(spans[start].start, spans[end].end, passage_text[spans[start].start : spans[end].end])
    return span, coverage(covered)


def _fragment_part(text: str) -> str:
    # In a text directive '-', ',' and '&' are syntax and must be percent-encoded.
    return quote(text, safe="()").replace("-", "%2D")


def fragment_url(url: str, quote_text: str, *, edge_words: int = 5, page: int | None = None) -> str:
    """``url#:~:text=start,end`` that highlights ``quote_text`` in a browser.

    Short quotes are matched whole; long ones by their first and last words. The start and end
    are taken from the quote's first and last line, since a match term cannot span block elements.
    A PDF's quote (``page`` given) links to ``url#page=N`` instead: browsers' PDF viewers open a
    page (RFC 8118) but do not read text directives.
    """
    base = url.split("#", 1)[0]
    if page is not None:
        return f"{base}#page={page}"
    lines = [" ".join(line.split()) for line in quote_text.split("\n") if line.strip()]
    if not lines:
        return base
    words_first, words_last = lines[0].split(" "), lines[-1].split(" ")
    if len(lines) == 1 and len(words_first) <= edge_words * 2:
        directive = _fragment_part(lines[0])
    else:
        start = " ".join(words_first[:edge_words])
        end = " ".join(words_last[-edge_words:])
        directive = f"{_fragment_part(start)},{_fragment_part(end)}"
    return f"{base}#:~:text={directive}"


def renumber(sentences: Sequence[tuple[str, Sequence[int]]]) -> str:
    """Rebuild the answer text with citation ids as ``[id]`` markers after each sentence."""
    parts = []
    for text, ids in sentences:
        marks = "".join(f"[{i}]" for i in ids)
        if text.startswith("```"):
            parts.append(f"\n{text}\n" + (marks and f"{marks} "))
        else:
            parts.append(f"{text} {marks}".rstrip())
    return " ".join(parts).replace(" \n", "\n").strip()
