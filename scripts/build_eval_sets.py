#!/usr/bin/env python3
"""Build the verbatim FAQ evaluation sets from the locally unpacked HTML docs.

Writes exactly two files into ``--out`` (default ``eval/sets/``), one JSON object per line:

* ``python_faq.jsonl`` -- every question of the Python 3.11 FAQ pages (``<python-html>/faq/*.html``)
* ``django_faq.jsonl`` -- every question of the Django FAQ pages (``<django-html>/faq/*.html``)

The hand-written sets that live next to them (``python_faq_paraphrased.jsonl``,
``python_offcorpus.jsonl``, ``python_faq_answers.jsonl``, ``django_offcorpus.jsonl``) are never
written by this script; ``--check`` validates them against the freshly parsed FAQ questions
without writing anything.

What counts as a question
    Sphinx renders every heading as a section element (``<section id=...>`` in the Python
    docs, ``<div class="section" id=...>`` in the Django docs). A question is a *leaf* section
    (one with no section inside it) that is not the page-title section and whose body has some
    text. Group headings such as "Core Language" have sub-sections and are skipped, and so is
    the empty "General GUI Questions" heading; Django's ``troubleshooting.html`` entries
    ("command not found: django-admin", "macOS permissions") are kept although they are not
    phrased as questions. ``faq/index.html`` has only its title section and yields nothing.

Fields
    ``id``           ``<page stem>/<section id>``, e.g. ``programming/how-do-i-copy-an-object-in-python``
                     (Django: ``models/s-how-can-i-see-the-raw-sql-queries-django-is-running``)
    ``question``     the heading text, "¶" permalink removed, whitespace collapsed
    ``gold_url``     public URL of the page, no fragment
    ``gold_anchor``  the section element's ``id`` attribute
    ``reference``    the section's text without its heading, whitespace collapsed, at most 600 chars
    ``answerable``   always ``true``

URL mapping (a plain prefix replacement on the path relative to the HTML root, the same thing
``citeline ingest --map-url LOCAL=PUBLIC`` does, so gold URLs equal the URLs such an ingest records)
    Python:  ``faq/programming.html`` -> ``https://docs.python.org/3.11/faq/programming.html``
    Django:  ``faq/general.html``     -> ``https://docs.djangoproject.com/en/stable/faq/general.html``

    The Django prefix can be changed with ``--django-base-url``. Note that the Debian package
    ``python-django-doc`` (bookworm) holds the Django 3.2 docs, and that the live site serves
    pages without the ``.html`` suffix (``/en/3.2/faq/general/``); the prefix mapping above is
    what an ingest of the local HTML with ``--map-url`` records. In the Django HTML the section
    element's id carries an ``s-`` prefix (``s-is-django-stable``) while the heading permalink
    points at a ``<span>`` without it (``#is-django-stable``); both ids exist in the page, and
    ``gold_anchor`` is the section element's id.

Order and determinism
    Records are ordered by page file name, then by position in the page. Output is UTF-8, LF
    line endings, ``ensure_ascii=False``, keys in a fixed order, so a rerun on the same HTML
    produces byte-identical files.

Usage (defaults are resolved against the repository root; explicit relative paths against the
current directory)::

    .venv/bin/python scripts/build_eval_sets.py [--python-html DIR] [--django-html DIR] [--out DIR]
    .venv/bin/python scripts/build_eval_sets.py --check   # validate all sets, write nothing

Get the Django HTML first with
``scripts/fetch-debian-doc.sh python-django-doc .cache/corpora/python-django-doc``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.html
from lxml.html import HtmlElement

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON_HTML = REPO_ROOT / ".cache/corpora/python3.11-doc/usr/share/doc/python3.11/html"
DEFAULT_DJANGO_HTML = REPO_ROOT / ".cache/corpora/python-django-doc/usr/share/doc/python-django-doc/html"
DEFAULT_OUT = REPO_ROOT / "eval/sets"
PYTHON_BASE_URL = "https://docs.python.org/3.11/"
DJANGO_BASE_URL = "https://docs.djangoproject.com/en/stable/"
REFERENCE_MAX_CHARS = 600

GENERATED = ("python_faq.jsonl", "django_faq.jsonl")
FIELDS = ("id", "question", "gold_url", "gold_anchor", "reference", "answerable")

# A section element: HTML5 <section> (Sphinx >= 4 HTML5 writer) or <div class="section">.
SECTION_XPATH = "self::section or self::div[contains(concat(' ', normalize-space(@class), ' '), ' section ')]"
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Elements whose boundaries separate words; their text is padded with spaces when flattened.
BLOCK_TAGS = HEADINGS | {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
SKIP_TAGS = {"script", "style", "template"}
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class FaqItem:
    id: str
    question: str
    gold_url: str
    gold_anchor: str
    reference: str
    answerable: bool = True

    def to_json(self) -> str:
        record = {name: getattr(self, name) for name in FIELDS}
        return json.dumps(record, ensure_ascii=False)


def normalise(text: str) -> str:
    """NFC, "¶" removed, runs of whitespace (including no-break spaces) collapsed to one space."""
    text = unicodedata.normalize("NFC", text).replace("¶", " ")
    return _WS.sub(" ", text).strip()


def _flatten(element: HtmlElement, parts: list[str], *, skip: HtmlElement | None = None) -> None:
    """Append the visible text of ``element`` to ``parts`` with spaces at block boundaries."""
    if element is skip:
        return
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag or tag in SKIP_TAGS or "headerlink" in (element.get("class") or "").split():
        # comment / processing instruction / script / permalink: drop it, keep the tail
        if element.tail:
            parts.append(element.tail)
        return
    block = tag in BLOCK_TAGS
    if block:
        parts.append(" ")
    if element.text:
        parts.append(element.text)
    for child in element:
        _flatten(child, parts, skip=skip)
    if block:
        parts.append(" ")
    if element.tail:
        parts.append(element.tail)


def text_of(element: HtmlElement, *, skip: HtmlElement | None = None) -> str:
    parts: list[str] = []
    # The element's own tail lies outside it.
    tail, element.tail = element.tail, None
    try:
        _flatten(element, parts, skip=skip)
    finally:
        element.tail = tail
    return normalise("".join(parts))


def _is_section(element: HtmlElement) -> bool:
    return bool(element.xpath(SECTION_XPATH))


def _heading(section: HtmlElement) -> HtmlElement | None:
    for child in section:
        if isinstance(child.tag, str) and child.tag in HEADINGS:
            return child
    return None


def truncate(text: str, limit: int = REFERENCE_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def parse_faq_page(path: Path, base_url: str, html_root: Path) -> list[FaqItem]:
    """The questions of one FAQ page, in page order."""
    tree = lxml.html.fromstring(path.read_bytes())
    rel = path.relative_to(html_root).as_posix()
    gold_url = base_url + rel
    items: list[FaqItem] = []
    sections = [el for el in tree.iter("section", "div") if _is_section(el)]
    for section in sections:
        anchor = section.get("id")
        depth = sum(1 for anc in section.iterancestors() if _is_section(anc))
        has_subsections = any(_is_section(d) for d in section.iterdescendants("section", "div"))
        heading = _heading(section)
        if not anchor or depth == 0 or has_subsections or heading is None:
            continue
        question = text_of(heading)
        reference = text_of(section, skip=heading)
        if not question or not reference:
            continue  # an empty group heading, e.g. gui.html "General GUI Questions"
        items.append(
            FaqItem(
                id=f"{path.stem}/{anchor}",
                question=question,
                gold_url=gold_url,
                gold_anchor=anchor,
                reference=truncate(reference),
            )
        )
    return items


def parse_faq_dir(html_root: Path, base_url: str) -> list[FaqItem]:
    faq_dir = html_root / "faq"
    pages = sorted(faq_dir.glob("*.html"), key=lambda p: p.name)
    if not pages:
        raise SystemExit(f"no FAQ pages found under {faq_dir}")
    items = [item for page in pages for item in parse_faq_page(page, base_url, html_root)]
    ids = [item.id for item in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SystemExit(f"duplicate ids in {faq_dir}: {duplicates}")
    return items


def write_jsonl(path: Path, items: list[FaqItem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(item.to_json() + "\n" for item in items)
    tmp.replace(path)


# --------------------------------------------------------------------------- validation (--check)


def read_jsonl(path: Path, errors: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    if not path.exists():
        errors.append(f"{path.name}: missing")
        return records
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path.name}:{n}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"{path.name}:{n}: not an object")
            continue
        records.append(obj)
    ids = [r.get("id") for r in records]
    dups = sorted({str(i) for i in ids if ids.count(i) > 1})
    if dups:
        errors.append(f"{path.name}: duplicate ids {dups}")
    return records


def check(out: Path, python_items: list[FaqItem], django_items: list[FaqItem]) -> list[str]:
    errors: list[str] = []
    for name, items in (("python_faq.jsonl", python_items), ("django_faq.jsonl", django_items)):
        path = out / name
        expected = "".join(item.to_json() + "\n" for item in items)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            errors.append(f"{name}: differs from a fresh parse (rerun without --check)")

    verbatim = {item.id: item for item in python_items}
    para = read_jsonl(out / "python_faq_paraphrased.jsonl", errors)
    para_ids = {r.get("id") for r in para}
    missing = sorted(set(verbatim) - para_ids)
    extra = sorted(str(i) for i in para_ids - set(verbatim))
    if missing:
        errors.append(f"python_faq_paraphrased.jsonl: no paraphrase for {missing}")
    if extra:
        errors.append(f"python_faq_paraphrased.jsonl: unknown ids {extra}")
    for r in para:
        item = verbatim.get(r.get("id", ""))
        if item is None:
            continue
        if set(r) != set(FIELDS):
            errors.append(f"paraphrase {item.id}: fields {sorted(r)}")
        errors.extend(
            f"paraphrase {item.id}: {field} differs from python_faq.jsonl"
            for field in ("gold_url", "gold_anchor", "reference", "answerable")
            if r.get(field) != getattr(item, field)
        )
        question = r.get("question")
        if not isinstance(question, str) or not question.strip():
            errors.append(f"paraphrase {item.id}: empty question")
        elif normalise(question).casefold() == item.question.casefold():
            errors.append(f"paraphrase {item.id}: identical to the heading")

    for name, count in (("python_offcorpus.jsonl", 50), ("django_offcorpus.jsonl", 20)):
        records = read_jsonl(out / name, errors)
        if len(records) != count:
            errors.append(f"{name}: {len(records)} lines, expected {count}")
        for r in records:
            if set(r) != {"id", "question", "answerable"} or r.get("answerable") is not False:
                errors.append(f"{name}: bad record {r}")
            if not re.fullmatch(r"offcorpus/\d{2}", str(r.get("id", ""))) or not str(r.get("question", "")).strip():
                errors.append(f"{name}: bad id/question {r}")

    answers = read_jsonl(out / "python_faq_answers.jsonl", errors)
    for r in answers:
        item = verbatim.get(r.get("id", ""))
        terms = r.get("answer_contains")
        if item is None:
            errors.append(f"python_faq_answers.jsonl: unknown id {r.get('id')}")
            continue
        if set(r) != {"id", "answer_contains"}:
            errors.append(f"python_faq_answers.jsonl {item.id}: fields {sorted(r)}")
        if not isinstance(terms, list) or not 1 <= len(terms) <= 2:
            errors.append(f"python_faq_answers.jsonl {item.id}: answer_contains must hold 1-2 strings")
            continue
        errors.extend(
            f"python_faq_answers.jsonl {item.id}: {term!r} not in the reference"
            for term in terms
            if not isinstance(term, str) or not term.strip() or term.casefold() not in item.reference.casefold()
        )
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--python-html", type=Path, default=DEFAULT_PYTHON_HTML, help="Python HTML docs root")
    parser.add_argument("--django-html", type=Path, default=DEFAULT_DJANGO_HTML, help="Django HTML docs root")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--django-base-url", default=DJANGO_BASE_URL, help="public URL prefix of the Django HTML root")
    parser.add_argument("--check", action="store_true", help="validate every set in --out; write nothing")
    args = parser.parse_args(argv)

    python_items = parse_faq_dir(args.python_html, PYTHON_BASE_URL)
    django_items = parse_faq_dir(args.django_html, args.django_base_url)

    if args.check:
        errors = check(args.out, python_items, django_items)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        for path in sorted(args.out.glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                print(f"{sum(1 for _ in fh):5d}  {path.name}")
        print("ok" if not errors else f"{len(errors)} problem(s)")
        return 1 if errors else 0

    write_jsonl(args.out / "python_faq.jsonl", python_items)
    write_jsonl(args.out / "django_faq.jsonl", django_items)
    print(f"{len(python_items):5d}  {args.out / 'python_faq.jsonl'}")
    print(f"{len(django_items):5d}  {args.out / 'django_faq.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
