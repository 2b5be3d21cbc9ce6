"""Is the question about something the corpus has never heard of?

A small generator asked "How do I parametrize a test with pytest?" over the Python docs will
happily explain ``unittest`` and cite it, and the verifier can pass those sentences: they are true
of their passages. The question's subject, though, is a name the corpus never mentions. Before
generating, citeline pulls the question's *distinctive terms* (code names and words outside
everyday vocabulary) and abstains when one of them occurs nowhere in the index.

Everyday words never count, however rare on the site: "invoke", "offline" or "swapping" in a
paraphrased question must not turn an answerable question into an abstention.
"""

from __future__ import annotations

import re

from citeline.service.answering.verify import code_names

_TERM = re.compile(r"[A-Za-z][A-Za-z0-9-]{3,}")
_SUFFIXES = ("s", "es", "ed", "d", "ing", "ers", "er", "ly", "able", "ness", "ment", "ion", "ions")


def _inflected_common(word: str, common: frozenset[str]) -> bool:
    """An inflection or negation of an everyday word ("linters" is not one; "unreadable" is)."""
    for suffix in _SUFFIXES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and (stem in common or stem + "e" in common):
            return True
    return word.startswith("un") and (word[2:] in common or _inflected_common(word[2:], common))


def distinctive_terms(question: str, common: frozenset[str]) -> list[str]:
    """Lower-cased code names and rare words of the question, in order of appearance.

    ``common`` is the everyday vocabulary (the embedder tokenizer's whole words). Without one, only
    code names count. ALLCAPS words are left out: acronyms (SQL, CPU, PC) are how people paraphrase.
    """
    terms: list[str] = []
    names = sorted(code_names(question), key=question.find)
    for name in names:
        # A dotted name is looked up by its last part: a question may quote a spelling the docs
        # never use ("items.join") about a name they do ("join").
        last = name.rsplit(".", 1)[-1]
        if not name.isupper() and len(last) > 2:
            terms.append(last.lower())
    if common:
        prose = question
        for name in names:
            prose = prose.replace(name, " ")
        for word in _TERM.findall(prose):
            lowered = word.lower()
            if word.isupper() or lowered in common or _inflected_common(lowered, common):
                continue
            if all(part in common or _inflected_common(part, common) for part in lowered.split("-") if part):
                continue
            terms.append(lowered)
    return list(dict.fromkeys(terms))
