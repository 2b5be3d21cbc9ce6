"""Verifying the generator's sentences while it writes them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from citeline.indexes import SearchHit
from citeline.service.answering.citations import (
    ParsedSentence,
    parse_answer,
)
from citeline.service.answering.citing import (
    CitationBook,
    claim_text,
    is_abstention,
    sentence_key,
)
from citeline.service.answering.links import URL_PATTERN
from citeline.service.answering.models import (
    AnswerSentence,
    SentenceCallback,
    VerifiedSentence,
)

if TYPE_CHECKING:
    from citeline.service.answering.answerer import Answerer


class SentenceStream:
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
        self._book = CitationBook()
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
        key = sentence_key(sentence.text)
        if sentence.is_code or not sentence.markers or key in self._seen or is_abstention(self._text):
            return False
        if URL_PATTERN.search(sentence.text):
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
