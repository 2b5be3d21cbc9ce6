"""Retrieve, generate, cite: the answering core shared by the CLI and the HTTP service."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from indexes import Embedder, PassageIndex, SearchHit
from service.citations import ParsedSentence, best_span, fragment_url, parse_answer, renumber
from service.generation import GenerationResult, Generator, TokenCallback
from service.prompt import NOT_FOUND, build_messages

ABSTENTION_TEXT = "The sources do not answer this question."
_ABSTAIN = re.compile(
    r"\bNOT[ _-]?FOUND\b|\b(?:sources|passages|context)\s+(?:do(?:es)?\s+not|don't)\s+"
    r"(?:contain|answer|mention|provide|say|include)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Citation:
    id: int
    url: str
    title: str
    quote: str
    """The span of the page that supports the sentence(s) citing it."""
    start: int
    """Offset of the quote in the page's extracted text."""
    end: int
    fragment_url: str
    """The page URL with a ``#:~:text=`` fragment that scrolls to and highlights the quote."""
    passage_id: int
    retrieval_score: float


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    text: str
    citations: list[int]
    """Ids of the citations backing this sentence."""
    attributed: bool = False
    """True when the generator wrote no marker and the citation was found by matching the
    sentence against the retrieved passages."""


@dataclass(frozen=True, slots=True)
class RetrievedPassage:
    passage_id: int
    score: float
    url: str
    title: str
    heading: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Timings:
    retrieve_ms: float
    generate_ms: float
    total_ms: float
    time_to_first_token_ms: float


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    index: str
    answer: str
    abstained: bool
    sentences: list[AnswerSentence]
    citations: list[Citation]
    retrieved: list[RetrievedPassage]
    timings: Timings
    usage: Usage
    model: str
    dropped_markers: list[int] = field(default_factory=list)
    """Markers the generator wrote that pointed at no retrieved passage (removed from the answer)."""


def retrieved(hit: SearchHit) -> RetrievedPassage:
    return RetrievedPassage(hit.passage_id, hit.score, hit.url, hit.title, hit.heading, hit.text, hit.start, hit.end)


def search(index: PassageIndex, embedder: Embedder, query: str, k: int) -> list[SearchHit]:
    return index.search(embedder.embed([query])[0], k)


@dataclass(slots=True)
class _CitationBook:
    """Gives one id to each distinct (passage, span) pair, in order of first use."""

    citations: list[Citation] = field(default_factory=list)
    _ids: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def cite(self, hit: SearchHit, claim: str) -> int:
        span, _coverage = best_span(claim, hit.text)
        start, end = hit.start + span.start, hit.start + span.end
        key = (hit.passage_id, start, end)
        if key not in self._ids:
            self._ids[key] = len(self.citations) + 1
            self.citations.append(
                Citation(
                    id=self._ids[key],
                    url=hit.url,
                    title=hit.title,
                    quote=span.text,
                    start=start,
                    end=end,
                    fragment_url=fragment_url(hit.url, span.text),
                    passage_id=hit.passage_id,
                    retrieval_score=round(hit.score, 4),
                )
            )
        return self._ids[key]


#: Share of a sentence's content words that one retrieved passage must contain before the
#: passage is cited for a sentence the generator left without a marker.
MIN_ATTRIBUTION_COVERAGE = 0.6


def attribute(sentence: ParsedSentence, hits: Sequence[SearchHit]) -> int | None:
    """The 1-based number of the retrieved passage that best covers an unmarked sentence."""
    if sentence.markers or sentence.is_code:
        return None
    scored = [(best_span(sentence.text, hit.text)[1], n) for n, hit in enumerate(hits, start=1)]
    coverage, number = max(scored, default=(0.0, 0))
    return number if coverage >= MIN_ATTRIBUTION_COVERAGE else None


def cite_sentences(
    parsed: Sequence[ParsedSentence], hits: Sequence[SearchHit]
) -> tuple[list[AnswerSentence], list[Citation]]:
    book = _CitationBook()
    sentences = []
    for sentence in parsed:
        found = attribute(sentence, hits)
        numbers = sentence.markers if found is None else [found]
        ids = [book.cite(hits[n - 1], sentence.text) for n in numbers]
        sentences.append(AnswerSentence(sentence.text, list(dict.fromkeys(ids)), attributed=found is not None))
    return sentences, book.citations


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN.search(text)) or text.strip().upper().startswith(NOT_FOUND)


class Answerer:
    """Answers a question from one index with the given embedder and generator."""

    def __init__(self, embedder: Embedder, generator: Generator, *, top_k: int = 4, max_new_tokens: int = 160) -> None:
        self.embedder = embedder
        self.generator = generator
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens

    def answer(
        self,
        question: str,
        index: PassageIndex,
        *,
        top_k: int | None = None,
        on_text: TokenCallback | None = None,
    ) -> Answer:
        started = time.perf_counter()
        hits = search(index, self.embedder, question, top_k or self.top_k)
        retrieve_s = time.perf_counter() - started
        if not hits:
            return self._abstain(
                question, index_name=index.name, hits=hits, retrieve_s=retrieve_s, started=started, generation=None
            )
        messages = build_messages(question, hits)
        result = self.generator.generate(messages, max_new_tokens=self.max_new_tokens, on_text=on_text)
        parsed = parse_answer(result.text, len(hits))
        dropped = [m for s in parsed for m in s.invalid_markers]
        sentences, citations = cite_sentences(parsed, hits)
        if is_abstention(result.text) or not citations:
            return self._abstain(
                question,
                index_name=index.name,
                hits=hits,
                retrieve_s=retrieve_s,
                started=started,
                generation=result,
                dropped=dropped,
            )
        total = time.perf_counter() - started
        return Answer(
            question=question,
            index=index.name,
            answer=renumber([(s.text, s.citations) for s in sentences]),
            abstained=False,
            sentences=sentences,
            citations=citations,
            retrieved=[retrieved(h) for h in hits],
            timings=Timings(
                retrieve_ms=round(retrieve_s * 1000, 1),
                generate_ms=round(result.seconds * 1000, 1),
                total_ms=round(total * 1000, 1),
                time_to_first_token_ms=round(result.time_to_first_token * 1000, 1),
            ),
            usage=Usage(result.prompt_tokens, result.completion_tokens, round(result.tokens_per_second, 2)),
            model=self.generator.model_name,
            dropped_markers=dropped,
        )

    def _abstain(
        self,
        question: str,
        *,
        index_name: str,
        hits: Sequence[SearchHit],
        retrieve_s: float,
        started: float,
        generation: GenerationResult | None,
        dropped: list[int] | None = None,
    ) -> Answer:
        total = time.perf_counter() - started
        return Answer(
            question=question,
            index=index_name,
            answer=ABSTENTION_TEXT,
            abstained=True,
            sentences=[],
            citations=[],
            retrieved=[retrieved(h) for h in hits],
            timings=Timings(
                retrieve_ms=round(retrieve_s * 1000, 1),
                generate_ms=round(generation.seconds * 1000, 1) if generation else 0.0,
                total_ms=round(total * 1000, 1),
                time_to_first_token_ms=round(generation.time_to_first_token * 1000, 1) if generation else 0.0,
            ),
            usage=Usage(
                generation.prompt_tokens if generation else 0,
                generation.completion_tokens if generation else 0,
                round(generation.tokens_per_second, 2) if generation else 0.0,
            ),
            model=self.generator.model_name,
            dropped_markers=dropped or [],
        )
