"""Retrieve, generate, verify, cite: the answering core shared by the CLI and the HTTP service.

Every sentence the generator writes is checked against the passages it cites (``verify``). Under
the ``strict`` policy a sentence no retrieved passage supports is removed and an answer left with
nothing supported becomes an abstention; under ``flag`` it stays, marked ``supported: false``. A
sentence whose cited passage does not support it but another retrieved passage does is re-pointed
to that passage.

When the generator declines (``NOT FOUND``) or none of its sentences survives verification although
retrieval found a close passage, the answer falls back to an *extract*: the sentences of the top
passages closest to the question, quoted verbatim with their citations (``Answer.extract``). A
quote is its own support, so an extract cannot say what its source does not; it abstains like
before when no sentence is close enough to the question.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from citeline.indexes import Embedder, PassageIndex, SearchHit, Vectors
from citeline.service.answering.budget import BudgetConfig, excerpts
from citeline.service.answering.citations import (
    ParsedSentence,
    Span,
    best_span,
    content_tokens,
    parse_answer,
    passage_spans,
    renumber,
)
from citeline.service.answering.citing import (
    CheckedSentence,
    CitationBook,
    alce_scores,
    claim_text,
    code_supported,
    is_abstention,
    see_also,
    sentence_key,
    table_cells,
)
from citeline.service.answering.links import has_words, quotable, remove_foreign_urls
from citeline.service.answering.models import (
    ABSTENTION_TEXT,
    EXTRACT_NOTICE,
    Answer,
    AnswerSentence,
    Candidate,
    Policy,
    SentenceCallback,
    Timings,
    Usage,
    retrieved,
)
from citeline.service.answering.prompt import build_messages
from citeline.service.answering.retriever import RetrievalConfig, Retriever
from citeline.service.answering.scope import distinctive_terms
from citeline.service.answering.source_set import SourceSet, as_sources
from citeline.service.answering.stream import SentenceStream
from citeline.service.answering.verify import Verifier, VerifierConfig, VerifierStats, score_pair
from citeline.service.generation import GenerationResult, Generator, TokenCallback


@dataclass(frozen=True, slots=True)
class ExtractConfig:
    """When an answer the generator declined falls back to quoting the sources (module docstring)."""

    enabled: bool = True
    """Fall back to an extract at all; off, a declined answer abstains."""
    min_passage_score: float = 0.5
    """The best passage must be at least this similar to the question (the threshold at which a
    refusal is retried: off-corpus questions' best passage stays below it on the project's sets)."""
    min_sentence_similarity: float = 0.5
    """A sentence is quoted only when at least this similar to the question on its own."""
    passages: int = 2
    """Sentences are taken from this many of the top passages."""
    sentences: int = 2
    """At most this many sentences are quoted."""
    min_chars: int = 20
    """Shorter sentences (headings, labels) are never quoted alone."""
    quote_rejected: bool = True
    """Under the strict policy, a generated sentence the checker rejects is replaced by the source
    span it was drawn from, quoted verbatim (``quoted``), instead of vanishing: "set umask to 0022
    for security in such cases" rather than an unscoped "The umask should be 0022"."""
    min_quote_coverage: float = 0.6
    """Share of the rejected sentence's content words its span must hold: the span is then what the
    sentence paraphrased, not a passage it merely cited."""


class Answerer:
    """Answers a question from one index with the given embedder, generator and verifier."""

    def __init__(
        self,
        embedder: Embedder,
        generator: Generator,
        *,
        top_k: int = 4,
        max_new_tokens: int = 160,
        verifier: Verifier | None = None,
        temperature: float = 0.7,
        retry_refusal_at: float = 0.5,
        abstain_on_unknown_terms: bool = True,
        budget: BudgetConfig | None = None,
        retrieval: RetrievalConfig | None = None,
        extract: ExtractConfig | None = None,
    ) -> None:
        self.embedder = embedder
        self.generator = generator
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        self.verifier = verifier or Verifier(embedder, generator, VerifierConfig())
        self.cheap_verifier = Verifier(embedder, None, dataclasses.replace(self.verifier.config, use_judge=False))
        """The checker without its judge: what can verify a sentence while the generator writes."""
        self.temperature = temperature
        self.retry_refusal_at = retry_refusal_at
        self.abstain_on_unknown_terms = abstain_on_unknown_terms
        self.budget = budget or BudgetConfig()
        self.retriever = Retriever(embedder, retrieval)
        self.extract = extract or ExtractConfig()
        """A refusal is retried once when the best passage is at least this similar to the question
        (measured: off-corpus questions' best passage stays below ~0.52 on the Python docs and ~0.35
        on the Django docs; paraphrased FAQ questions are above 0.59 for three in four)."""

    # -- verification ------------------------------------------------------------------------

    def _check(
        self, question: str, parsed: Sequence[ParsedSentence], hits: Sequence[SearchHit], stats: VerifierStats
    ) -> list[CheckedSentence]:
        """Score every claim against its cited passages and against the best other passage."""
        pairs: list[tuple[str, str]] = []
        slots: list[tuple[int, int, bool]] = []  # (sentence index, passage number, is_alternative)
        for i, sentence in enumerate(parsed):
            if sentence.is_code:
                continue
            claim = claim_text(question, sentence.text)
            for number in sentence.markers:
                pairs.append((claim, hits[number - 1].text))
                slots.append((i, number, False))
            coverage = {n: best_span(claim, hit.text)[1] for n, hit in enumerate(hits, start=1)}
            others = [n for n in coverage if n not in sentence.markers]
            if others:
                best = max(others, key=lambda n: (coverage[n], n))
                cited_coverage = max((coverage[n] for n in sentence.markers), default=0.0)
                if coverage[best] > cited_coverage:
                    pairs.append((claim, hits[best - 1].text))
                    slots.append((i, best, True))
        evidence = self.verifier.check(pairs, stats)
        checked = [CheckedSentence(sentence, []) for sentence in parsed]
        for (i, number, is_alternative), found in zip(slots, evidence, strict=True):
            if is_alternative:
                checked[i].alternative = (number, found)
            else:
                checked[i].cited.append((number, found))
        for item in checked:
            if len(item.cited) > 1 and not item.supported_by_citations:
                joined = "\n".join(hits[n - 1].text for n, _ in item.cited)
                similarity = max(e.similarity for _, e in item.cited)
                claim = claim_text(question, item.sentence.text)
                union = score_pair(claim, joined, similarity, self.verifier.config, self.verifier.common_words)
                item.joint = union.verdict == "supported"
        return checked

    def _verified(
        self,
        question: str,
        parsed: Sequence[ParsedSentence],
        hits: Sequence[SearchHit],
        policy: Policy,
        stats: VerifierStats,
    ) -> tuple[Candidate, list[str], tuple[float, float]]:
        checked = self._check(question, parsed, hits, stats)
        generator_metrics = alce_scores(checked)
        book = CitationBook()
        sentences: list[AnswerSentence] = []
        removed: list[str] = []
        kept: set[str] = set()
        for item in checked:
            sentence = item.sentence
            # Small models loop ("X [1] X [1] X"): a sentence said once is enough.
            key = sentence_key(sentence.text)
            if key in kept:
                continue
            kept.add(key)
            if sentence.is_code:
                ok, share = code_supported(sentence.text, hits)
                if ok or policy == "flag":
                    sentences.append(AnswerSentence(sentence.text, [], ok, round(share, 3)))
                else:
                    removed.append(sentence.text)
                continue
            supporting = [(n, e) for n, e in item.cited if e.verdict == "supported"]
            repointed = attributed = False
            if item.joint:
                supporting = item.cited
            elif not supporting and item.alternative and item.alternative[1].verdict == "supported":
                supporting = [item.alternative]
                repointed, attributed = bool(sentence.markers), not sentence.markers
            if supporting:
                ids = [book.cite(hits[n - 1], e.span) for n, e in supporting]
                score = max(e.score for _, e in supporting)
                judged = any(e.judged for _, e in supporting)
                sentence_ids = list(dict.fromkeys(ids))
                sentences.append(
                    AnswerSentence(sentence.text, sentence_ids, True, round(score, 3), attributed, repointed, judged)
                )
            elif policy == "flag":
                ids = [book.cite(hits[n - 1], e.span) for n, e in item.cited]
                score = max((e.score for _, e in item.cited), default=0.0)
                judged = any(e.judged for _, e in item.cited)
                sentences.append(AnswerSentence(sentence.text, ids, False, round(score, 3), judged=judged))
            else:
                removed.append(sentence.text)
                source = self._source_span(item, hits)
                if source is not None and sentence_key(source[1].text) not in kept:
                    kept.add(sentence_key(source[1].text))
                    quote_id = book.cite(hits[source[0] - 1], source[1])
                    sentences.append(AnswerSentence(source[1].text, [quote_id], True, 1.0, quoted=True))
        claims = [s for s in sentences if s.citations or not s.supported]
        recall = sum(1 for s in claims if s.supported) / len(claims) if claims else 0.0
        cited_pairs = [(s, c) for s in claims for c in s.citations]
        precision = sum(1 for s, _ in cited_pairs if s.supported) / len(cited_pairs) if cited_pairs else 0.0
        prose = [s for s in sentences if has_words(s.text)]
        support = float(np.mean([s.score for s in prose])) if prose else 0.0
        # Under flag the unsupported sentences are the answer, marked; under strict nothing is left.
        abstained = not sentences if policy == "flag" else not any(s.supported and s.citations for s in sentences)
        candidate = Candidate(
            answer=renumber([(s.text, s.citations) for s in sentences]),
            abstained=abstained,
            sentences=sentences,
            citations=book.citations,
            citation_recall=round(recall, 3),
            citation_precision=round(precision, 3),
            support=round(support, 3),
        )
        return candidate, removed, generator_metrics

    def _may_quote(self, hits: Sequence[SearchHit]) -> bool:
        """Whether the answer may quote the sources of its own accord: extracts are on and the best
        passage is close enough to the question."""
        return self.extract.enabled and bool(hits) and hits[0].score >= self.extract.min_passage_score

    def _source_span(self, item: CheckedSentence, hits: Sequence[SearchHit]) -> tuple[int, Span] | None:
        """The span a rejected sentence was drawn from (passage number, span), when it may stand in
        for it: retrieval was confident, and the span holds most of the sentence's content words."""
        config = self.extract
        if not (config.quote_rejected and self._may_quote(hits)):
            return None
        candidates = [*item.cited, *([item.alternative] if item.alternative else [])]
        if not candidates:
            return None
        number, evidence = max(candidates, key=lambda c: c[1].coverage)
        span = evidence.span
        if evidence.coverage < config.min_quote_coverage or not quotable(span.text, hits, config.min_chars):
            return None
        return number, span

    def _extract(self, question: str, question_vector: Vectors, hits: Sequence[SearchHit]) -> Candidate | None:
        """The top passages' sentences closest to the question, quoted verbatim; None when retrieval
        or every sentence is too far from the question (then the answer abstains)."""
        config = self.extract
        if not self._may_quote(hits):
            return None
        wanted = content_tokens(question)
        pool = [
            (hit, span)
            for hit in hits[: config.passages]
            for sentence in passage_spans(hit.text)
            for span in table_cells(sentence)
            if quotable(span.text, hits, config.min_chars) and content_tokens(span.text) & wanted
        ]
        if not pool:
            return None
        vectors = self.embedder.embed([span.text for _, span in pool])
        similarity = vectors @ np.asarray(question_vector, dtype=np.float32).reshape(-1)
        ranked = sorted(range(len(pool)), key=lambda i: float(similarity[i]), reverse=True)
        chosen = [i for i in ranked[: config.sentences] if similarity[i] >= config.min_sentence_similarity]
        if not chosen:
            return None
        chosen.sort()  # the passages' order, and each passage's own sentence order
        book = CitationBook()
        sentences = [
            AnswerSentence(pool[i][1].text, [book.cite(*pool[i])], True, round(float(similarity[i]), 3), quoted=True)
            for i in chosen
        ]
        return Candidate(
            answer=renumber([(s.text, s.citations) for s in sentences]),
            abstained=False,
            sentences=sentences,
            citations=book.citations,
            citation_recall=1.0,
            citation_precision=1.0,
            support=1.0,
        )

    # -- answering ---------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        index: PassageIndex | SourceSet,
        *,
        top_k: int | None = None,
        policy: Policy = "strict",
        n: int = 1,
        on_text: TokenCallback | None = None,
        on_sentence: SentenceCallback | None = None,
    ) -> Answer:
        """The verified answer. ``on_text`` gets the generator's raw tokens; ``on_sentence`` each
        sentence verified while the answer is written (only with ``n == 1``: with several
        candidates the final answer may be another one)."""
        started = time.perf_counter()
        sources = as_sources(index)
        question_vector = self.embedder.embed([question])[0]
        hits = self.retriever.search_sources(sources, question, top_k or self.top_k, vector=question_vector)
        retrieve_s = time.perf_counter() - started
        stats = VerifierStats()
        results: list[GenerationResult] = []
        scored: list[tuple[Candidate, list[str], list[int], list[str], tuple[float, float]]] = []
        verify_s = excerpt_s = 0.0
        unknown: list[str] = []
        first_verified_ms: float | None = None
        if hits and self.abstain_on_unknown_terms:
            unknown = sources.unmentioned(distinctive_terms(question, self.verifier.common_words))
        if hits and not unknown:
            t0 = time.perf_counter()
            shown = excerpts(question, question_vector, hits, self.embedder, self.budget)
            excerpt_s = time.perf_counter() - t0
            source_chars = max(600, self.budget.max_chars)
            messages = build_messages(question, hits, texts=shown, max_source_chars=source_chars)
            seen: set[str] = set()
            stream = SentenceStream(self, question, hits, started, on_sentence if n == 1 else None)

            def first_text(piece: str) -> bool | None:
                stream.feed(piece)
                return on_text(piece) if on_text is not None else None

            for attempt in range(n):
                result = self.generator.generate(
                    messages,
                    max_new_tokens=self.max_new_tokens,
                    temperature=0.0 if attempt == 0 else self.temperature,
                    seed=attempt,
                    on_text=first_text if attempt == 0 else None,
                )
                results.append(result)
                if attempt == 0:
                    stream.finish()
                if attempt == 0 and is_abstention(result.text) and hits[0].score >= self.retry_refusal_at:
                    result = self.generator.generate(
                        build_messages(question, hits, insist=True, texts=shown, max_source_chars=source_chars),
                        max_new_tokens=self.max_new_tokens,
                    )
                    results.append(result)
                key = " ".join(result.text.split()).lower()
                if key in seen:
                    continue
                seen.add(key)
                t0 = time.perf_counter()
                text, urls = remove_foreign_urls(result.text, hits)
                parsed = parse_answer(text, len(hits))
                dropped = [m for s in parsed for m in s.invalid_markers]
                if is_abstention(text):
                    # A refusal after sentences already shown as verified ("... [1]. The sources do
                    # not say more.") keeps those sentences: a reader has seen them.
                    parsed = parsed[: stream.emitted] if attempt == 0 and result is results[0] else []
                candidate, removed, generator_metrics = self._verified(question, parsed, hits, policy, stats)
                verify_s += time.perf_counter() - t0
                scored.append((candidate, removed, dropped, urls, generator_metrics))
            first_verified_ms = stream.first_ms
        scored.sort(key=lambda s: (not s[0].abstained, s[0].citation_recall, s[0].support), reverse=True)
        agreement = self._agreement([s[0] for s in scored]) if n > 1 else None
        total = time.perf_counter() - started
        generate_s = sum(r.seconds for r in results)
        first = results[0] if results else None
        usage = Usage(
            prompt_tokens=first.prompt_tokens if first else 0,
            completion_tokens=sum(r.completion_tokens for r in results),
            tokens_per_second=round(first.tokens_per_second, 2) if first else 0.0,
            judge_calls=stats.judge_calls,
            judged_pairs=stats.judged,
        )
        timings = Timings(
            retrieve_ms=round(retrieve_s * 1000, 1),
            generate_ms=round(generate_s * 1000, 1),
            verify_ms=round(verify_s * 1000, 1),
            total_ms=round(total * 1000, 1),
            time_to_first_token_ms=round(first.time_to_first_token * 1000, 1) if first else 0.0,
            excerpt_ms=round(excerpt_s * 1000, 1),
            first_verified_sentence_ms=first_verified_ms if first_verified_ms is not None else round(total * 1000, 1),
        )
        best = scored[0] if scored else None
        declined = best is None or best[0].abstained
        extract = self._extract(question, question_vector, hits) if declined and hits and not unknown else None
        given = extract if extract is not None else None if best is None or declined else best[0]
        if given is None:
            timings = dataclasses.replace(timings, first_verified_sentence_ms=None)
        generator_recall, generator_precision = best[4] if best else (0.0, 0.0)
        return Answer(
            question=question,
            index=sources.name,
            answer=given.answer if given else ABSTENTION_TEXT,
            abstained=given is None,
            policy=policy,
            sentences=given.sentences if given else [],
            citations=given.citations if given else [],
            citation_recall=given.citation_recall if given else 0.0,
            citation_precision=given.citation_precision if given else 0.0,
            generator_citation_recall=round(generator_recall, 3),
            generator_citation_precision=round(generator_precision, 3),
            see_also=[] if given else see_also(hits),
            retrieved=[retrieved(h) for h in hits],
            timings=timings,
            usage=usage,
            model=self.generator.model_name,
            dropped_markers=best[2] if best else [],
            removed_sentences=best[1] if best else [],
            removed_urls=best[3] if best else [],
            candidates=[s[0] for s in scored] if n > 1 else [],
            agreement=agreement,
            unknown_terms=unknown,
            notices=[*sources.notices, EXTRACT_NOTICE] if extract else list(sources.notices),
            live=sources.report,
            extract=extract is not None,
        )

    def _agreement(self, candidates: Sequence[Candidate]) -> float | None:
        answering = [c.answer for c in candidates if not c.abstained]
        if len(candidates) < 2:
            return 1.0 if candidates else None
        if len(answering) < len(candidates):
            # Some candidates abstained and some answered: they disagree on whether there is an answer.
            share = len(answering) / len(candidates)
            return round(1.0 - 2 * min(share, 1 - share), 3)
        vectors = self.embedder.embed(answering)
        sims = [float(vectors[i] @ vectors[j]) for i, j in itertools.combinations(range(len(answering)), 2)]
        return round(float(np.mean(sims)), 3)
