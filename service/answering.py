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
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from indexes import Embedder, HybridRetriever, PassageIndex, RetrievalMode, SearchHit, Vectors
from service.budget import BudgetConfig, excerpts
from service.citations import (
    ParsedSentence,
    Span,
    best_span,
    content_tokens,
    fragment_url,
    parse_answer,
    passage_spans,
    renumber,
)
from service.generation import GenerationResult, Generator, TokenCallback
from service.prompt import NOT_FOUND, build_messages, neutralise
from service.scope import distinctive_terms
from service.sources import INDEXED_AT_KEY, LIVE_KEY, LiveReport, SourceSet, as_sources
from service.verify import Evidence, Verifier, VerifierConfig, VerifierStats, score_pair

Policy = Literal["strict", "flag"]
ABSTENTION_TEXT = "The sources do not answer this question."
EXTRACT_NOTICE = (
    "The model did not answer from these sources; the answer is the passages' own sentences closest "
    "to the question, quoted verbatim."
)
_ABSTAIN = re.compile(
    r"\bNOT[ _-]?FOUND\b|\b(?:sources|passages|context)\s+(?:do(?:es)?\s+not|don't)\s+"
    r"(?:contain|answer|mention|provide|say|include)",
    re.I,
)
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
_URL = re.compile(
    rf"\b[a-z][a-z0-9+.-]{{1,15}}://{_URL_TAIL}+"
    rf"|(?<![\w.-])(?:www\.|//(?=\w)){_URL_TAIL}+"
    rf"|(?<![\w./-]){_HOST}(?:{_TLDS})(?![\w-])(?::\d{{1,5}})?(?:/{_URL_TAIL}*)?"
    rf"|(?<![\w./-]){_HOST}[a-z]{{2,24}}(?::\d{{1,5}})?/(?=[a-z_~%-]){_URL_TAIL}*",
    re.I,
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?=//)|^//", re.I)


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
    site_name: str | None = None
    author: str | None = None
    published: str | None = None
    """The date the page states (as extracted), not when it was fetched."""
    license: str | None = None
    """The license the page declares (a URL or a name), when it declares one."""
    fetched_at: str | None = None
    """When citeline last fetched (or revalidated) the page."""
    http_status: int | None = None
    content_hash: str | None = None
    """sha256 of the page text the quote's offsets index into."""
    live: str | None = None
    """Set when the quote comes from a page fetched for this question: ``url``, ``search`` or
    ``recheck`` (why it was fetched); ``fetched_at`` and ``content_hash`` are then of that fetch."""
    changed_since_index: bool = False
    """The stored copy of this page differs from the page as it is now: the quote is from the
    current text (``indexed_at`` says when the stored copy was fetched)."""
    indexed_at: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    text: str
    citations: list[int]
    """Ids of the citations backing this sentence."""
    supported: bool
    """Whether its citations support it (always true under the strict policy)."""
    score: float
    """Support score of the best citation, 0..1."""
    attributed: bool = False
    """The generator wrote no marker; the citation was found by matching the sentence."""
    repointed: bool = False
    """The generator cited a passage that does not support the sentence; another one did."""
    judged: bool = False
    """The verdict came from the generator acting as a yes/no judge (cheap evidence was unsure)."""
    quoted: bool = False
    """The sentence is its citation's own words (an extract), not the generator's."""


@dataclass(frozen=True, slots=True)
class VerifiedSentence:
    """A sentence verified while the answer is still being written (``sentence`` stream events).

    Streamed sentences are always the first sentences of the final answer, in order, with the same
    text, citation ids and citations: a client may show them as they come and append the rest
    from the final answer."""

    position: int
    """0-based place in the answer's sentences."""
    sentence: AnswerSentence
    citations: list[Citation]
    """The citations its ``citations`` ids name."""
    elapsed_ms: float
    """From the question to this sentence."""


SentenceCallback = Callable[[VerifiedSentence], None]


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
class SeeAlso:
    """A closest source, listed when the answer abstains."""

    url: str
    title: str
    heading: str
    snippet: str
    fragment_url: str
    score: float


@dataclass(frozen=True, slots=True)
class Timings:
    retrieve_ms: float
    generate_ms: float
    verify_ms: float
    total_ms: float
    time_to_first_token_ms: float
    excerpt_ms: float = 0.0
    """Choosing the sentences shown to the generator (the prompt budget)."""
    first_verified_sentence_ms: float | None = None
    """From the question to the first sentence the reader can be shown as verified: streamed early
    when cheap evidence supports it while the answer is still written, else the finished answer
    (None when the answer abstained)."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float
    judge_calls: int = 0
    judged_pairs: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One verified answer among several (``n > 1``)."""

    answer: str
    abstained: bool
    sentences: list[AnswerSentence]
    citations: list[Citation]
    citation_recall: float
    citation_precision: float
    support: float
    """Mean support score over the candidate's sentences: the ranking key after recall."""


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    index: str
    answer: str
    abstained: bool
    policy: Policy
    sentences: list[AnswerSentence]
    citations: list[Citation]
    citation_recall: float
    """Share of the answer's sentences fully supported by their citations."""
    citation_precision: float
    """Share of the answer's citations that support their sentence (ALCE definition)."""
    generator_citation_recall: float
    """The same two measures on the generator's own markers, before verification changed them."""
    generator_citation_precision: float
    see_also: list[SeeAlso]
    retrieved: list[RetrievedPassage]
    timings: Timings
    usage: Usage
    model: str
    dropped_markers: list[int] = field(default_factory=list)
    """Markers that pointed at no retrieved passage (removed from the answer)."""
    removed_sentences: list[str] = field(default_factory=list)
    """Sentences removed by the strict policy because no source supports them."""
    removed_urls: list[str] = field(default_factory=list)
    """URLs the generator wrote that are not among the sources (removed from the answer)."""
    candidates: list[Candidate] = field(default_factory=list)
    """All distinct verified candidates, best first, when more than one was asked for."""
    agreement: float | None = None
    """Mean pairwise similarity of the non-abstaining candidates (1 = they say the same)."""
    unknown_terms: list[str] = field(default_factory=list)
    """Distinctive terms of the question that no passage of the index mentions: the answer
    abstained without generating, since the corpus cannot be about them."""
    cached: bool = False
    """Served from the answer cache: the same question, options and unchanged index were answered
    before (``timings`` are those of that first answer)."""
    notices: list[str] = field(default_factory=list)
    """Plain sentences the reader should see with the answer: a cited page changed since it was
    indexed, a page asked for was skipped..."""
    live: LiveReport | None = None
    """Pages fetched, skipped and rechecked at question time (None when none was asked for)."""
    extract: bool = False
    """The generator declined or nothing it wrote was supported, so the answer is the sources' own
    sentences closest to the question, quoted verbatim (each sentence ``quoted``)."""


def retrieved(hit: SearchHit) -> RetrievedPassage:
    return RetrievedPassage(hit.passage_id, hit.score, hit.url, hit.title, hit.heading, hit.text, hit.start, hit.end)


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How passages are found for a question."""

    mode: RetrievalMode = "dense"
    """``dense`` (embeddings), ``hybrid`` (dense and BM25 fused by reciprocal rank) or ``bm25``."""
    mmr: bool = True
    """Re-rank the candidates by maximal marginal relevance, so near-repeats give way to other
    passages (hit@5 never lower than plain dense on the Python and Django FAQ sets; see README)."""
    mmr_lambda: float = 0.7
    """MMR's weight on relevance against novelty (1: relevance only)."""


class Retriever:
    """Searches whichever index it is handed with one configuration.

    Keeps one :class:`HybridRetriever` per open index object (its BM25 index is built on first use)
    until :meth:`forget`: an index reopened after its store was replaced gets its own, while
    requests still holding the old one keep searching theirs.
    """

    def __init__(self, embedder: Embedder, config: RetrievalConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._by_index: dict[PassageIndex, HybridRetriever] = {}
        self._lock = threading.Lock()

    def _for(self, index: PassageIndex) -> HybridRetriever:
        with self._lock:
            current = self._by_index.get(index)
            if current is None:
                current = HybridRetriever(index, self.embedder, mmr_lambda=self.config.mmr_lambda)
                self._by_index[index] = current
            return current

    def search(self, index: PassageIndex, question: str, k: int, *, vector: Vectors | None = None) -> list[SearchHit]:
        """The ``k`` best passages, best first, each scored by its cosine to the question."""
        if self.config.mode == "dense" and not self.config.mmr:
            return index.search(self.embedder.embed([question])[0] if vector is None else vector, k)
        return self._for(index).search(question, k, self.config.mode, mmr=self.config.mmr, vector=vector)

    def search_sources(
        self, sources: PassageIndex | SourceSet, question: str, k: int, *, vector: Vectors | None = None
    ) -> list[SearchHit]:
        """The ``k`` best passages over a :class:`SourceSet`: each index searched as :meth:`search`
        does, then the lists merged by :meth:`SourceSet.merge` (a lone index keeps its ranking)."""
        sources = as_sources(sources)
        if vector is None:
            vector = self.embedder.embed([question])[0]
        stored: list[SearchHit] = []
        if sources.stored is not None:
            # Hits of superseded pages are dropped after the search: ask for enough to still fill k.
            wanted = k * 2 if sources.superseded else k
            stored = self.search(sources.stored, question, wanted, vector=vector)
        live: list[SearchHit] = []
        if sources.live is not None:
            live = self.search(sources.live, question, k, vector=vector)
        return sources.merge(stored, live, k)

    def forget(self, index: PassageIndex) -> None:
        """Drop what is kept for an index being closed (a question's live pages, an index the registry
        closes once nobody holds it)."""
        with self._lock:
            current = self._by_index.pop(index, None)
        if current is not None:
            current.close()


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
            SeeAlso(hit.url, hit.title, hit.heading, snippet, fragment_url(hit.url, snippet), round(hit.score, 4))
        )
        if len(out) == limit:
            break
    return out


_CELL = re.compile(r"[^|]+")


def _table_cells(span: Span) -> list[Span]:
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
class _CitationBook:
    """Gives one id to each distinct (passage, span) pair, in order of first use."""

    citations: list[Citation] = field(default_factory=list)

    _ids: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def cite(self, hit: SearchHit, span: Span) -> int:
        start, end = hit.start + span.start, hit.start + span.end
        # By page and offsets, not passage id: a stored and a live index number passages apart.
        key = (hit.url, start, end)
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
                )
            )
        return self._ids[key]


@dataclass(slots=True)
class _Checked:
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


def _alpha(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2}", text))


def _code_supported(code: str, hits: Sequence[SearchHit]) -> tuple[bool, float]:
    """A code block is supported when most of its names appear in the retrieved passages."""
    names = {t for t in content_tokens(code) if not t.isdigit()}
    if not names:
        return True, 1.0
    passages = " ".join(h.text.lower() for h in hits)
    share = sum(1 for n in names if n in passages) / len(names)
    return share >= 0.6, share


def _alce(checked: Sequence[_Checked]) -> tuple[float, float]:
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


class _SentenceStream:
    """Verifies the generator's sentences as they complete, with cheap evidence only (the generator,
    the judge, is busy writing), and hands on those it supports while they form an unbroken prefix
    of the answer: the first sentence that is unsure, unsupported, code, a URL carrier or a repeat
    ends the early stream, and the finished answer says the rest."""

    def __init__(
        self,
        answerer: Answerer,
        question: str,
        hits: Sequence[SearchHit],
        started: float,
        on_sentence: SentenceCallback | None,
    ) -> None:
        self._answerer = answerer
        self._question = question
        self._hits = hits
        self._started = started
        self._on_sentence = on_sentence
        self._text = ""
        self._done = 0
        self._open = True
        self._book = _CitationBook()
        self._seen: set[str] = set()
        self.first_ms: float | None = None

    @property
    def emitted(self) -> int:
        """How many of the answer's first sentences were handed on."""
        return len(self._seen)

    def feed(self, piece: str) -> None:
        if self._open:
            self._text += piece
            # The last sentence may still grow (or gain markers) until the next one starts.
            self._verify_complete(last_is_complete=False)

    def finish(self) -> None:
        """The generator is done: its last sentence is complete too."""
        if self._open:
            self._verify_complete(last_is_complete=True)
        self._open = False

    def _verify_complete(self, *, last_is_complete: bool) -> None:
        parsed = parse_answer(self._text, len(self._hits))
        for sentence in parsed[self._done : len(parsed) if last_is_complete else len(parsed) - 1]:
            self._done += 1
            if not self._emit(sentence):
                self._open = False
                return

    def _emit(self, sentence: ParsedSentence) -> bool:
        key = _sentence_key(sentence.text)
        if sentence.is_code or not sentence.markers or key in self._seen or is_abstention(self._text):
            return False
        if _URL.search(sentence.text):
            return False
        claim = claim_text(self._question, sentence.text)
        evidence = self._answerer.cheap_verifier.check([(claim, self._hits[n - 1].text) for n in sentence.markers])
        supporting = [(n, e) for n, e in zip(sentence.markers, evidence, strict=True) if e.verdict == "supported"]
        if not supporting:
            return False
        self._seen.add(key)
        ids = list(dict.fromkeys(self._book.cite(self._hits[n - 1], e.span) for n, e in supporting))
        verified = AnswerSentence(sentence.text, ids, True, round(max(e.score for _, e in supporting), 3))
        elapsed = (time.perf_counter() - self._started) * 1000
        if self.first_ms is None:
            self.first_ms = round(elapsed, 1)
        if self._on_sentence is not None:
            by_id = {c.id: c for c in self._book.citations}
            self._on_sentence(VerifiedSentence(self._done - 1, verified, [by_id[i] for i in ids], round(elapsed, 1)))
        return True


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
    ) -> list[_Checked]:
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
        checked = [_Checked(sentence, []) for sentence in parsed]
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
        generator_metrics = _alce(checked)
        book = _CitationBook()
        sentences: list[AnswerSentence] = []
        removed: list[str] = []
        kept: set[str] = set()
        for item in checked:
            sentence = item.sentence
            # Small models loop ("X [1] X [1] X"): a sentence said once is enough.
            key = _sentence_key(sentence.text)
            if key in kept:
                continue
            kept.add(key)
            if sentence.is_code:
                ok, share = _code_supported(sentence.text, hits)
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
                if source is not None and _sentence_key(source[1].text) not in kept:
                    kept.add(_sentence_key(source[1].text))
                    quote_id = book.cite(hits[source[0] - 1], source[1])
                    sentences.append(AnswerSentence(source[1].text, [quote_id], True, 1.0, quoted=True))
        claims = [s for s in sentences if s.citations or not s.supported]
        recall = sum(1 for s in claims if s.supported) / len(claims) if claims else 0.0
        cited_pairs = [(s, c) for s in claims for c in s.citations]
        precision = sum(1 for s, _ in cited_pairs if s.supported) / len(cited_pairs) if cited_pairs else 0.0
        prose = [s for s in sentences if _alpha(s.text)]
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

    def _source_span(self, item: _Checked, hits: Sequence[SearchHit]) -> tuple[int, Span] | None:
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
        if evidence.coverage < config.min_quote_coverage or not _quotable(span.text, hits, config):
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
            for span in _table_cells(sentence)
            if _quotable(span.text, hits, config) and content_tokens(span.text) & wanted
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
        book = _CitationBook()
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
            stream = _SentenceStream(self, question, hits, started, on_sentence if n == 1 else None)

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
                text, urls = _remove_foreign_urls(result.text, hits)
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


def _sentence_key(text: str) -> str:
    """A sentence as compared for repeats: case, spacing and a final full stop aside."""
    return " ".join(text.lower().split()).rstrip(".")


def _quotable(text: str, hits: Sequence[SearchHit], config: ExtractConfig) -> bool:
    """Page words citeline may show as a quote of its own accord: long enough to be a sentence, and
    neither planting a link to a page it did not retrieve nor addressing a model (a quote the
    generator's text would have had removed or neutralised must not come back as an extract)."""
    return (
        len(text) >= config.min_chars
        and _alpha(text)
        and not _remove_foreign_urls(text, hits)[1]
        and neutralise(text, anywhere=True) == text
    )


def _bare(url: str) -> str:
    """``url`` without scheme, fragment and trailing slash, lower-cased: the form all spellings share."""
    return _SCHEME.sub("", url.split("#", 1)[0]).lstrip("/").rstrip("/").lower()


def _remove_foreign_urls(text: str, hits: Sequence[SearchHit]) -> tuple[str, list[str]]:
    """Remove URLs and domains that are not one of the retrieved pages (or its host): page text
    may try to plant links."""
    allowed = {_bare(h.url) for h in hits}
    allowed |= {b.split("/", 1)[0] for b in allowed}
    allowed |= {a.removeprefix("www.") for a in allowed}
    removed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        url = match.group().rstrip(".,;:!?")
        if _bare(url) in allowed:
            return match.group()
        removed.append(url)
        return "[link removed]" + match.group()[len(url) :]

    return _URL.sub(replace, text), removed
