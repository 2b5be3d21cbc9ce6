"""Sentence-level bookkeeping of an answer: citation ids, checked sentences, ALCE scores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from citeline.indexes import PDF_PAGE_KEY, SearchHit
from citeline.service.answering.citations import (
    ParsedSentence,
    Span,
    content_tokens,
    fragment_url,
)
from citeline.service.answering.models import (
    Citation,
    SeeAlso,
)
from citeline.service.answering.prompt import NOT_FOUND
from citeline.service.answering.source_set import INDEXED_AT_KEY, LIVE_KEY
from citeline.service.answering.verify import Evidence

_ABSTAIN = re.compile(
    r"\bNOT[ _-]?FOUND\b|\b(?:sources|passages|context)\s+(?:do(?:es)?\s+not|don't)\s+"
    r"(?:contain|answer|mention|provide|say|include)",
    re.I,
)


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN.search(text)) or text.strip().upper().startswith(NOT_FOUND)


def see_also(hits: Sequence[SearchHit], limit: int = 3) -> list[SeeAlso]:
    """The closest sources, one per page."""
    out: list[SeeAlso] = []
    for hit in hits:
        if any(s.url == hit.url for s in out):
            continue
        first_line = next((line for line in hit.text.split("\n") if len(line.split()) > 3), hit.text.split("\n")[0])
        snippet = " ".join(first_line.split())[:240]
        out.append(
            SeeAlso(
                hit.url,
                hit.title,
                hit.heading,
                snippet,
                fragment_url(hit.url, snippet, page=_int_or_none(hit.metadata.get(PDF_PAGE_KEY))),
                round(hit.score, 4),
            )
        )
        if len(out) == limit:
            break
    return out


_CELL = re.compile(r"[^|]+")


def table_cells(span: Span) -> list[Span]:
    """A sentence split at table cell bars ("| Ctrl-Z | stops the job |" gives "Ctrl-Z" and "stops
    the job"), each still a verbatim piece of the passage: a row is no sentence a reader quotes."""
    if "|" not in span.text:
        return [span]
    cells = []
    for match in _CELL.finditer(span.text):
        text = match.group().strip()
        if text:
            start = span.start + match.start() + (len(match.group()) - len(match.group().lstrip()))
            cells.append(Span(start, start + len(text), text))
    return cells


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@dataclass(slots=True)
class CitationBook:
    """Gives one id to each distinct (passage, span) pair, in order of first use."""

    citations: list[Citation] = field(default_factory=list)

    _ids: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def cite(self, hit: SearchHit, span: Span) -> int:
        start, end = hit.start + span.start, hit.start + span.end
        # By page and offsets, not passage id: a stored and a live index number passages apart.
        key = (hit.url, start, end)
        if key not in self._ids:
            # A passage never crosses a PDF page (ingest.chunk), so the span is on the passage's page.
            page = _int_or_none(hit.metadata.get(PDF_PAGE_KEY))
            self._ids[key] = len(self.citations) + 1
            self.citations.append(
                Citation(
                    id=self._ids[key],
                    url=hit.url,
                    title=hit.title,
                    quote=span.text,
                    start=start,
                    end=end,
                    fragment_url=fragment_url(hit.url, span.text, page=page),
                    passage_id=hit.passage_id,
                    retrieval_score=round(hit.score, 4),
                    site_name=hit.metadata.get("sitename"),
                    author=hit.metadata.get("author"),
                    published=hit.metadata.get("date"),
                    license=hit.metadata.get("license"),
                    fetched_at=hit.metadata.get("fetched_at"),
                    http_status=_int_or_none(hit.metadata.get("status")),
                    content_hash=hit.metadata.get("content_hash"),
                    live=hit.metadata.get(LIVE_KEY),
                    changed_since_index=hit.metadata.get(INDEXED_AT_KEY) is not None,
                    indexed_at=hit.metadata.get(INDEXED_AT_KEY),
                    page=page,
                )
            )
        return self._ids[key]


@dataclass(slots=True)
class CheckedSentence:
    sentence: ParsedSentence
    cited: list[tuple[int, Evidence]]
    """The generator's markers (1-based passage numbers) with their evidence."""
    alternative: tuple[int, Evidence] | None = None
    joint: bool = False
    """No single citation supports the sentence, but all of them together do."""

    @property
    def supported_by_citations(self) -> bool:
        return self.joint or any(e.verdict == "supported" for _, e in self.cited)


def claim_text(question: str, sentence: str) -> str:
    """What to verify: a fragment answer ("csv.writer()") only means something with its question."""
    if len(sentence.split()) >= 5:
        return sentence
    return f"{question.strip().rstrip('?')}: {sentence}"


def has_words(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2}", text))


def code_supported(code: str, hits: Sequence[SearchHit]) -> tuple[bool, float]:
    """A code block is supported when most of its names appear in the retrieved passages."""
    names = {t for t in content_tokens(code) if not t.isdigit()}
    if not names:
        return True, 1.0
    passages = " ".join(h.text.lower() for h in hits)
    share = sum(1 for n in names if n in passages) / len(names)
    return share >= 0.6, share


def alce_scores(checked: Sequence[CheckedSentence]) -> tuple[float, float]:
    """(citation recall, citation precision) over sentences that carry citations or claims."""
    claims = [c for c in checked if not c.sentence.is_code]
    if not claims:
        return 0.0, 0.0
    recall = sum(1 for c in claims if c.supported_by_citations) / len(claims)
    total = precise = 0
    for c in claims:
        for _, evidence in c.cited:
            total += 1
            if c.supported_by_citations and (evidence.verdict == "supported" or c.joint):
                precise += 1
    return recall, (precise / total if total else 0.0)


def sentence_key(text: str) -> str:
    """A sentence as compared for repeats: case, spacing and a final full stop aside."""
    return " ".join(text.lower().split()).rstrip(".")
