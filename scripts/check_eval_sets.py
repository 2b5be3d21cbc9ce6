#!/usr/bin/env python3
"""Check the hand-written question sets of the extra corpora against the pages they cite.

``scripts/build_eval_sets.py --check`` covers the Python and Django FAQ sets, which it derives from
FAQ headings. The extra corpora (issue 15) have no such structure to derive from: their sets are
written by hand, so this script verifies what a writer can get wrong. For each corpus in
``CORPORA`` it reads three files in ``eval/sets/``:

* ``<prefix>_questions.jsonl``      answerable questions: ``id``, ``question``, ``gold_url``,
                                    optional ``gold_anchor``, ``answer_contains`` (1-4 strings),
                                    optional ``list: true``, ``answerable: true``
* ``<prefix>_offcorpus.jsonl``      ``id``, ``question``, ``answerable: false``
* ``<prefix>_false_premise.jsonl``  ``id``, ``question``, ``answerable: true``, ``false_premise: true``,
                                    ``gold_url``, optional ``gold_anchor``, ``premise_correction``

Always checked: every line is a JSON object, ids are unique within a file, fields and types are as
above, counts reach the corpus's minimums, and every ``gold_url`` lies under the corpus's public
base URL. When the corpus is unpacked (``scripts/fetch-debian-doc.sh PACKAGE DIR``) also: the gold
page exists (``gold_url`` mapped back to a file under the HTML root by the same prefix replacement
``citeline ingest --map-url`` does), every ``answer_contains`` and ``premise_correction`` string
occurs case-insensitively in the page's text as citeline extracts it (``ingest.extract``), the
``gold_anchor`` is an id on that page, and the strings occur inside the section that id opens.
Without the corpus those page checks are skipped with a message; the rest still runs.

Usage::

    .venv/bin/python scripts/check_eval_sets.py [--sets DIR] [--corpus PREFIX=HTML_ROOT ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.html
from lxml.html import HtmlElement

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))  # the sibling script, whether run or loaded by path

from build_eval_sets import read_jsonl  # noqa: E402  (one reader of JSON Lines sets)

from citeline.ingest import extract  # noqa: E402  (needs the repository root on sys.path first)


@dataclass(frozen=True)
class Corpus:
    prefix: str
    package: str
    html_root: Path
    base_url: str
    min_questions: int = 60
    offcorpus: int = 20
    min_false_premise: int = 8
    index_page: str = "index.html"
    """The page a crawl of the corpus starts from (relative to ``html_root``)."""


CORPORA = {
    c.prefix: c
    for c in (
        Corpus(
            prefix="debref",
            package="debian-reference-en",
            html_root=REPO_ROOT / ".cache/corpora/debian-reference-en/usr/share/debian-reference",
            base_url="https://www.debian.org/doc/manuals/debian-reference/",
            index_page="index.en.html",
        ),
        # The package holds every translation side by side; only the English tree is crawled, and
        # its pages carry rel=canonical links under this prefix.
        Corpus(
            prefix="handbook",
            package="debian-handbook",
            html_root=REPO_ROOT / ".cache/corpora/debian-handbook/usr/share/doc/debian-handbook/html/en-US",
            base_url="https://debian-handbook.info/browse/stable/",
        ),
        Corpus(
            prefix="puzzles",
            package="sgt-puzzles",
            html_root=REPO_ROOT / ".cache/corpora/sgt-puzzles/usr/share/sgt-puzzles/help/en",
            base_url="https://www.chiark.greenend.org.uk/~sgtatham/puzzles/doc/",
        ),
    )
}

_WS = re.compile(r"\s+")


def fold(text: str) -> str:
    """Case- and whitespace-insensitive form: pages use no-break spaces and line breaks where a
    writer types a plain space."""
    return _WS.sub(" ", text).strip().casefold()


def _strings(value: object, low: int, high: int) -> list[str] | None:
    if not isinstance(value, list) or not low <= len(value) <= high:
        return None
    if not all(isinstance(s, str) and s.strip() for s in value):
        return None
    return value


class Pages:
    """Gold pages of one corpus, read and extracted once each."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._cache: dict[str, tuple[str, HtmlElement] | None] = {}

    def path_of(self, url: str) -> Path | None:
        rel = url.removeprefix(self.corpus.base_url)
        root = self.corpus.html_root.resolve()
        path = (root / rel).resolve()
        # A gold URL with "..", a query or a fragment is not a page of this corpus.
        if not rel or "?" in rel or "#" in rel or not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def get(self, url: str) -> tuple[str, HtmlElement] | None:
        if url not in self._cache:
            path = self.path_of(url)
            if path is None:
                self._cache[url] = None
            else:
                raw = path.read_bytes()
                text = extract(raw.decode("utf-8"), url).text
                self._cache[url] = (fold(text), lxml.html.fromstring(raw))
        return self._cache[url]


def section_text(tree: HtmlElement, anchor: str) -> str | None:
    """Text of the section an id opens: DocBook puts the id on an ``<a>`` inside the heading, so
    climb to the nearest section-like ``div``; an id on the section element itself counts too."""
    found = tree.xpath("//*[@id=$a]", a=anchor)
    if not found:
        return None
    element: HtmlElement | None = found[0]
    while element is not None:
        classes = (element.get("class") or "").split()
        if element.tag in {"section", "div"} and {"section", "chapter", "preface", "appendix"} & set(classes):
            return fold(element.text_content())
        element = element.getparent()
    return fold(found[0].text_content())


def check_gold(name: str, record: dict[str, Any], terms: Iterable[str], pages: Pages | None, errors: list[str]) -> None:
    rid = record.get("id")
    url = record.get("gold_url")
    corpus = pages.corpus if pages else None
    if not isinstance(url, str) or (corpus and not url.startswith(corpus.base_url)):
        errors.append(f"{name} {rid}: gold_url {url!r} is not under the corpus base URL")
        return
    anchor = record.get("gold_anchor")
    if anchor is not None and (not isinstance(anchor, str) or not anchor):
        errors.append(f"{name} {rid}: gold_anchor must be a non-empty string")
        return
    if pages is None:
        return
    page = pages.get(url)
    if page is None:
        errors.append(f"{name} {rid}: no page for {url} under {pages.corpus.html_root}")
        return
    text, tree = page
    section = section_text(tree, anchor) if anchor else None
    if anchor and section is None:
        errors.append(f"{name} {rid}: no id {anchor!r} on {url}")
    for term in terms:
        if fold(term) not in text:
            errors.append(f"{name} {rid}: {term!r} is not in the extracted text of {url}")
        elif section is not None and fold(term) not in section:
            errors.append(f"{name} {rid}: {term!r} is on the page but not in section #{anchor}")


def check_corpus(corpus: Corpus, sets: Path, *, pages_available: bool) -> list[str]:
    errors: list[str] = []
    pages = Pages(corpus) if pages_available else None

    name = f"{corpus.prefix}_questions.jsonl"
    questions = read_jsonl(sets / name, errors)
    if len(questions) < corpus.min_questions:
        errors.append(f"{name}: {len(questions)} questions, at least {corpus.min_questions} expected")
    allowed = {"id", "question", "gold_url", "gold_anchor", "answer_contains", "list", "answerable"}
    for r in questions:
        rid = r.get("id")
        if set(r) - allowed or not {"id", "question", "gold_url", "answer_contains"} <= set(r):
            errors.append(f"{name} {rid}: fields {sorted(r)}")
        if not str(rid or "").startswith(f"{corpus.prefix}/") or not str(r.get("question", "")).strip():
            errors.append(f"{name} {rid}: bad id or empty question")
        if r.get("answerable", True) is not True or r.get("list", False) not in (True, False):
            errors.append(f"{name} {rid}: answerable must be true and list a boolean")
        terms = _strings(r.get("answer_contains"), 1, 4)
        if terms is None:
            errors.append(f"{name} {rid}: answer_contains must hold 1-4 non-empty strings")
            continue
        if r.get("list") and len(terms) < 2:
            errors.append(f"{name} {rid}: a list question needs every part in answer_contains")
        check_gold(name, r, terms, pages, errors)

    name = f"{corpus.prefix}_offcorpus.jsonl"
    offcorpus = read_jsonl(sets / name, errors)
    if len(offcorpus) != corpus.offcorpus:
        errors.append(f"{name}: {len(offcorpus)} lines, expected {corpus.offcorpus}")
    for r in offcorpus:
        if set(r) != {"id", "question", "answerable"} or r.get("answerable") is not False:
            errors.append(f"{name}: bad record {r}")
        elif not re.fullmatch(r"offcorpus/\d{2}", str(r["id"])) or not str(r["question"]).strip():
            errors.append(f"{name}: bad id/question {r}")

    name = f"{corpus.prefix}_false_premise.jsonl"
    premises = read_jsonl(sets / name, errors)
    if len(premises) < corpus.min_false_premise:
        errors.append(f"{name}: {len(premises)} lines, at least {corpus.min_false_premise} expected")
    required = {"id", "question", "answerable", "false_premise", "gold_url", "premise_correction"}
    for r in premises:
        rid = r.get("id")
        if not required <= set(r) or set(r) - required - {"gold_anchor"}:
            errors.append(f"{name} {rid}: fields {sorted(r)}")
            continue
        if r["answerable"] is not True or r["false_premise"] is not True:
            errors.append(f"{name} {rid}: answerable and false_premise must be true")
        if not re.fullmatch(r"premise/[a-z0-9-]+", str(rid)) or not str(r["question"]).strip():
            errors.append(f"{name} {rid}: bad id or empty question")
        terms = _strings(r["premise_correction"], 1, 6)
        if terms is None:
            errors.append(f"{name} {rid}: premise_correction must hold 1-6 non-empty strings")
            continue
        check_gold(name, r, terms, pages, errors)
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", type=Path, default=REPO_ROOT / "eval/sets", help="directory of the sets")
    parser.add_argument(
        "--corpus", action="append", default=[], metavar="PREFIX=HTML_ROOT", help="another HTML root for a corpus"
    )
    args = parser.parse_args(argv)
    corpora = dict(CORPORA)
    for spec in args.corpus:
        prefix, _, root = spec.partition("=")
        if prefix not in corpora or not root:
            parser.error(f"--corpus {spec!r}: expected PREFIX=HTML_ROOT with PREFIX in {sorted(corpora)}")
        old = corpora[prefix]
        corpora[prefix] = dataclasses.replace(old, html_root=Path(root))

    errors: list[str] = []
    for corpus in corpora.values():
        available = corpus.html_root.is_dir()
        if not available:
            print(
                f"{corpus.prefix}: page checks skipped, {corpus.html_root} is missing "
                f"(scripts/fetch-debian-doc.sh {corpus.package} .cache/corpora/{corpus.package})"
            )
        found = check_corpus(corpus, args.sets, pages_available=available)
        errors.extend(found)
        print(f"{corpus.prefix}: {'ok' if not found else f'{len(found)} problem(s)'}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
