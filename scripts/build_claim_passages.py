#!/usr/bin/env python
"""Pull passages for the citation-checker check sets, assemble them, and verify them.

The check sets (``eval/checks/*_docs_claims.jsonl``) pair a passage -- exactly as citeline's own
extractor and chunker produce it from a locally unpacked documentation page -- with a hand-written
claim sentence and a label. This helper is what the passages were pulled with, so they can be
re-extracted and checked whenever the extractor, the chunker or the docs change.

Usage (run from the repository root with the project's virtualenv)::

    # list the passages of some pages, numbered, to choose from
    .venv/bin/python scripts/build_claim_passages.py --dump python library/json.html tutorial/controlflow.html
    .venv/bin/python scripts/build_claim_passages.py --dump sqlite lang_select.html --grep LIMIT

    # turn a hand-written spec into a check-set file (see ``build`` below for the spec format)
    .venv/bin/python scripts/build_claim_passages.py --build spec.json --out eval/checks/x.jsonl

    # re-extract every line's page and assert its passage is still a substring of the page text
    .venv/bin/python scripts/build_claim_passages.py --verify [FILE.jsonl ...]

Pages are read from the Debian doc packages unpacked under ``.cache/corpora`` (see
``scripts/fetch-debian-doc.sh``) and recorded under their public URLs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from citeline.ingest.chunk import chunk  # noqa: E402
from citeline.ingest.extract import ExtractedPage, extract  # noqa: E402

CORPORA = {
    "python": (
        REPO / ".cache/corpora/python3.11-doc/usr/share/doc/python3.11/html",
        "https://docs.python.org/3.11/",
    ),
    "sqlite": (
        REPO / ".cache/corpora/sqlite3-doc/usr/share/doc/sqlite3",
        "https://www.sqlite.org/",
    ),
}
DEFAULT_FILES = [
    REPO / "eval/checks/python_docs_claims.jsonl",
    REPO / "eval/checks/sqlite_docs_claims.jsonl",
]
LABELS = {"supported", "unsupported"}
KINDS = {"supported", "number", "name", "negation", "neighbour", "unsupported_extra"}


def page_url(corpus: str, page: str) -> str:
    return CORPORA[corpus][1] + page


def local_path(url: str) -> Path:
    for root, prefix in CORPORA.values():
        if url.startswith(prefix):
            return root / url[len(prefix) :].split("#", 1)[0]
    raise ValueError(f"no local corpus for {url}")


@cache
def extracted(url: str) -> ExtractedPage:
    # Decode as the fetcher does for a page served without a charset: UTF-8, replacing errors.
    html = local_path(url).read_bytes().decode("utf-8", errors="replace")
    return extract(html, url)


def passages(url: str) -> list[str]:
    page = extracted(url)
    return [p.text for p in chunk(page.text, page.headings)]


def dump(corpus: str, pages: list[str], grep: str | None) -> None:
    for page in pages:
        url = page_url(corpus, page)
        print(f"##### {url}")
        for i, text in enumerate(passages(url)):
            if grep and grep.lower() not in text.lower():
                continue
            print(f"--- [{i}] ({len(text.split())} words)")
            print(text)
        print()


def build(spec_path: Path, out: Path) -> None:
    """Spec: a JSON list of groups ``{"corpus", "page", "pick", "claims": [[label, kind, claim], ...]}``.

    ``pick`` is a snippet of the wanted passage; the passage of the page that contains it (it must
    be exactly one) is stored whole. Ids are ``<corpus>-<nnn>`` in spec order.
    """
    groups = json.loads(spec_path.read_text())
    lines: list[dict[str, str]] = []
    errors: list[str] = []
    for g, group in enumerate(groups):
        url = page_url(group["corpus"], group["page"])
        matches = [p for p in passages(url) if group["pick"] in p]
        if len(matches) != 1:
            errors.append(f"group {g} ({url}): pick {group['pick']!r} matches {len(matches)} passages")
            continue
        for label, kind, claim in group["claims"]:
            lines.append(
                {
                    "id": f"{group['corpus']}-{len(lines) + 1:03d}",
                    "url": url,
                    "passage": matches[0],
                    "claim": claim,
                    "label": label,
                    "kind": kind,
                }
            )
    if errors:
        raise SystemExit("\n".join(errors))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"wrote {len(lines)} lines to {out}")


def verify(files: list[Path]) -> bool:
    ok = True
    ids: set[str] = set()
    for path in files:
        kinds: Counter[str] = Counter()
        for n, raw in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.name}:{n}"
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as exc:
                print(f"{where}: not JSON: {exc}")
                ok = False
                continue
            problems = []
            missing = {"id", "url", "passage", "claim", "label", "kind"} - line.keys()
            if missing:
                problems.append(f"missing fields {sorted(missing)}")
            else:
                if line["id"] in ids:
                    problems.append(f"duplicate id {line['id']}")
                ids.add(line["id"])
                if line["label"] not in LABELS or line["kind"] not in KINDS:
                    problems.append(f"bad label/kind {line['label']}/{line['kind']}")
                if (line["label"] == "supported") != (line["kind"] == "supported"):
                    problems.append("label and kind disagree")
                try:
                    text = extracted(line["url"]).text
                except Exception as exc:  # a missing page or an extraction failure
                    problems.append(f"cannot extract {line['url']}: {exc}")
                else:
                    if line["passage"] not in text:
                        problems.append("passage is not a substring of the page's extracted text")
                    elif line["passage"] not in passages(line["url"]):
                        # Still citable (a substring), but the chunker no longer cuts it this way.
                        print(f"{where}: note: passage is no longer one whole chunk of {line['url']}")
            if problems:
                ok = False
                print(f"{where} ({line.get('id')}): " + "; ".join(problems))
            kinds[line.get("kind", "?")] += 1
        print(f"{path}: {sum(kinds.values())} lines; " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
    print("verify: OK" if ok else "verify: FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dump", nargs="+", metavar=("CORPUS", "PAGE"), help="print the passages of pages")
    mode.add_argument("--build", type=Path, metavar="SPEC", help="assemble a check set from a spec")
    mode.add_argument("--verify", nargs="*", type=Path, metavar="FILE", help="verify check-set files")
    parser.add_argument("--grep", help="with --dump: only passages containing this text")
    parser.add_argument("--out", type=Path, help="with --build: the JSONL file to write")
    args = parser.parse_args(argv)
    if args.dump:
        corpus, *pages = args.dump
        if corpus not in CORPORA or not pages:
            parser.error(f"--dump needs a corpus ({', '.join(CORPORA)}) and at least one page")
        dump(corpus, pages, args.grep)
        return 0
    if args.build:
        if not args.out:
            parser.error("--build needs --out")
        build(args.build, args.out)
        return 0
    return 0 if verify(args.verify or DEFAULT_FILES) else 1


if __name__ == "__main__":
    sys.exit(main())
