"""The prompt budget: send the generator each passage's most relevant sentences, not the whole passage.

Prompt length is the main lever on answer latency here: prefill is compute-bound, and every source
character is paid for again on every question (the instructions and few-shot turns before them
are a fixed prefix that the generator's prefix cache reuses). So the sources are cut to a character
budget: every retrieved passage keeps its best sentence (each stays a citable source, numbered as
retrieved), then the remaining budget goes to the best-scoring sentences of any passage. A
sentence's score is its embedding similarity to the question plus a bonus for the question's
content words it contains (names and identifiers that a small embedder blurs).

Only what is shown changes: verification still checks each answer sentence against the whole
passage, so a claim drawn from a shown sentence is found where it sits in the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from citeline.indexes import Embedder, SearchHit, Vectors
from citeline.service.answering.citations import Span, content_tokens, passage_spans

GAP = " … "
"""Written between two selected sentences that are not adjacent in the passage."""


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How much source text a prompt may carry."""

    max_chars: int = 1400
    """Characters of source text over all passages (about 4 characters per token for English prose,
    fewer for code); 0 sends whole passages."""
    lexical_weight: float = 0.3
    """Weight of the share of the question's content words a sentence contains, added to its cosine."""
    min_sentence_chars: int = 12
    """Shorter sentences ("Example:", a lone bracket) are only shown next to a selected neighbour."""
    carry: float = 0.9
    """A sentence scores at least this share of the one before it: answers tend to follow the
    sentence that restates the question (a heading, a definition), not to repeat its words."""
    lead_bonus: float = 0.0
    """Added to each passage's first sentence: a section's opening sentence tends to state its point."""
    passage_weight: float = 0.5
    """Weight of the whole passage's retrieval score, added to each of its sentences' scores, so the
    best passages get more of the budget."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    hit: int
    position: int
    span: Span
    score: float


def _spans(hit: SearchHit) -> list[Span]:
    spans = passage_spans(hit.text)
    return spans or [Span(0, len(hit.text), hit.text)]


def _lexical(question_tokens: set[str], text: str) -> float:
    if not question_tokens:
        return 0.0
    return len(question_tokens & content_tokens(text)) / len(question_tokens)


def _render(text: str, spans: Sequence[Span], chosen: Sequence[int]) -> str:
    """The chosen spans in passage order; adjacent ones keep the text between them (line breaks)."""
    parts: list[str] = []
    previous: int | None = None
    for position in sorted(chosen):
        span = spans[position]
        if previous is not None:
            parts.append(text[spans[previous].end : span.start] if position == previous + 1 else GAP)
        parts.append(span.text)
        previous = position
    first, last = min(chosen), max(chosen)
    prefix = "… " if first > 0 else ""
    suffix = " …" if last < len(spans) - 1 else ""
    return prefix + "".join(parts) + suffix


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def excerpts(
    question: str,
    question_vector: Vectors,
    hits: Sequence[SearchHit],
    embedder: Embedder,
    config: BudgetConfig | None = None,
) -> list[str]:
    """One excerpt per hit, in hit order, together within ``config.max_chars`` (whole passages when
    they already fit)."""
    config = config or BudgetConfig()
    texts = [hit.text for hit in hits]
    if config.max_chars <= 0 or sum(len(t) for t in texts) <= config.max_chars:
        return texts
    spans = [_spans(hit) for hit in hits]
    question_tokens = content_tokens(question)
    flat = [(i, j, span) for i, hit_spans in enumerate(spans) for j, span in enumerate(hit_spans)]
    vectors = embedder.embed([span.text for _, _, span in flat])
    cosines = vectors @ np.asarray(question_vector, dtype=np.float32).reshape(-1)
    own = [
        float(cosine) + config.lexical_weight * _lexical(question_tokens, span.text)
        for (_, _, span), cosine in zip(flat, cosines, strict=True)
    ]
    candidates = []
    for n, (i, j, span) in enumerate(flat):
        score = max(own[n], config.carry * own[n - 1]) if j > 0 else own[n] + config.lead_bonus
        candidates.append(_Candidate(i, j, span, score + config.passage_weight * hits[i].score))
    ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
    chosen: list[set[int]] = [set() for _ in hits]
    remaining = config.max_chars
    share = max(1, config.max_chars // max(1, len(hits)))
    # Every passage keeps its best sentence, clipped to an even share of the budget if it is long.
    for i in range(len(hits)):
        best = next((c for c in ranked if c.hit == i and len(c.span.text) >= config.min_sentence_chars), None)
        best = best or next(c for c in ranked if c.hit == i)
        if len(best.span.text) > share:
            spans[i][best.position] = Span(best.span.start, best.span.end, _clip(best.span.text, share))
        chosen[i].add(best.position)
        remaining -= len(spans[i][best.position].text)
    for candidate in ranked:
        if candidate.position in chosen[candidate.hit] or len(candidate.span.text) < config.min_sentence_chars:
            continue
        cost = len(candidate.span.text) + len(GAP)
        if cost <= remaining:
            chosen[candidate.hit].add(candidate.position)
            remaining -= cost
    # Leftover budget shows the short neighbours ("For example:") of what was chosen.
    for i, hit_spans in enumerate(spans):
        for position in sorted(chosen[i]):
            for neighbour in (position - 1, position + 1):
                if 0 <= neighbour < len(hit_spans) and neighbour not in chosen[i]:
                    cost = len(hit_spans[neighbour].text) + 1
                    if len(hit_spans[neighbour].text) < config.min_sentence_chars and cost <= remaining:
                        chosen[i].add(neighbour)
                        remaining -= cost
    return [_render(hit.text, spans[i], sorted(chosen[i])) for i, hit in enumerate(hits)]
