"""A local directory of documents as a source of pages: :func:`directory_pages` yields each HTML,
PDF, Markdown or plain-text file as a :class:`~ingest.fetch.FetchedPage` under a URL prefix, as the
crawler would have fetched it (a PDF as bytes, the others decoded), and a file over the size cap as
a :class:`~ingest.fetch.FetchFailure` of kind ``size``, so the run summary says why it is missing."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from citeline.ingest._decode import decode_html
from citeline.ingest.documents import MARKDOWN_TYPE, TEXT_TYPE
from citeline.ingest.fetch import FetchedPage, FetchFailure
from citeline.ingest.pdf import PDF_TYPE
from citeline.ingest.scope import canonical

log = logging.getLogger(__name__)

_MEDIA_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": PDF_TYPE,
    ".md": MARKDOWN_TYPE,
    ".markdown": MARKDOWN_TYPE,
    ".txt": TEXT_TYPE,
}
_SUFFIXES = tuple(_MEDIA_TYPES)


def _media_type(name: str) -> str:
    return _MEDIA_TYPES[PurePosixPath(name.lower()).suffix]


def _document_files(root: Path) -> list[PurePosixPath]:
    """HTML, PDF, Markdown and text files under ``root``, relative, sorted.

    Symlinked directories are not entered (loops, escapes)."""
    found: list[PurePosixPath] = []
    for directory, _, files in os.walk(root, followlinks=False):
        relative = PurePosixPath(*Path(directory).relative_to(root).parts)
        found.extend(relative / name for name in files if name.lower().endswith(_SUFFIXES))
    return sorted(found)


def _directory_page(
    root: Path, relative: PurePosixPath, base_url: str, max_bytes: int
) -> FetchedPage | FetchFailure | None:
    path = root.joinpath(*relative.parts)
    started = time.perf_counter()
    # fsencode keeps file names that are not valid UTF-8 (surrogate-escaped) as their original bytes.
    url = canonical(base_url + quote(os.fsencode(str(relative)), safe="/"))
    try:
        if not path.resolve(strict=True).is_relative_to(root):
            log.warning("skipping %s: it links outside %s", path, root)
            return None
        stat = path.stat()
        if not path.is_file():  # FIFOs and devices would block or never end
            log.warning("skipping %s: not a regular file", path)
            return None
        if stat.st_size > max_bytes:
            log.warning("skipping %s: over %d bytes", path, max_bytes)
            return FetchFailure(url, f"file of {stat.st_size} bytes, over the cap of {max_bytes}", kind="size")
        data = path.read_bytes()
    except OSError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    media_type = _media_type(relative.name)
    is_pdf = media_type == PDF_TYPE
    return FetchedPage(
        url=url,
        final_url=url,
        status=200,
        html="" if is_pdf else decode_html(data),
        headers={"content-type": media_type, "last-modified": formatdate(stat.st_mtime, usegmt=True)},
        depth=0,
        elapsed=time.perf_counter() - started,
        media_type=media_type,
        data=data if is_pdf else b"",
    )


def directory_pages(
    root: Path,
    base_url: str,
    *,
    max_pages: int | None = None,
    max_bytes: int = 5_000_000,
    on_cap: Callable[[int], None] | None = None,
) -> Iterator[FetchedPage | FetchFailure]:
    """Every ``*.html``/``*.htm``/``*.pdf``/``*.md``/``*.txt`` file under ``root`` as a fetched page,
    in sorted path order.

    A page's URL is ``base_url`` + its percent-encoded POSIX path relative to ``root``. Files that
    cannot be read or are symlinks leading outside ``root`` are skipped with a logged warning; one
    larger than ``max_bytes`` is a failure of kind ``size``. With ``max_pages``, reading stops after that many pages and
    ``on_cap`` is told how many files were left unread.
    """
    root = root.resolve(strict=True)
    prefix = base_url if base_url.endswith("/") else f"{base_url}/"
    yielded = 0
    files = _document_files(root)
    for position, relative in enumerate(files):
        if max_pages is not None and yielded >= max_pages:
            if on_cap is not None:
                on_cap(len(files) - position)
            return
        page = _directory_page(root, relative, prefix, max_bytes)
        if page is not None:
            yielded += isinstance(page, FetchedPage)
            yield page
