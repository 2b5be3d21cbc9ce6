"""What an answer is made of: the response models every interface serialises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from citeline.indexes import SearchHit
from citeline.service.answering.source_set import LiveReport

Policy = Literal["strict", "flag"]
ABSTENTION_TEXT = "The sources do not answer this question."
EXTRACT_NOTICE = (
    "The model did not answer from these sources; the answer is the passages' own sentences closest "
    "to the question, quoted verbatim."
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
    """The page URL with a ``#:~:text=`` fragment that scrolls to and highlights the quote; for a
    PDF, ``#page=N``, which opens it at the quote's page."""
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
    page: int | None = None
    """The PDF page (1-based) the quote is on; None for a page that is not a PDF."""


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
