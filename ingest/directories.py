"""A local directory of HTML files as a source of pages: :func:`directory_pages` yields each file as a
:class:`~ingest.fetch.FetchedPage` under a URL prefix, as the crawler would have fetched it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ingest._decode import decode_html
from ingest.fetch import FetchedPage, canonical

log = logging.getLogger(__name__)

_HTML_SUFFIXES = (".html", ".htm")


def _html_files(root: Path) -> list[PurePosixPath]:
    """HTML files under ``root``, relative, sorted. Symlinked directories are not entered (loops, escapes)."""
    found: list[PurePosixPath] = []
    for directory, _, files in os.walk(root, followlinks=False):
        relative = PurePosixPath(*Path(directory).relative_to(root).parts)
        found.extend(relative / name for name in files if name.lower().endswith(_HTML_SUFFIXES))
    return sorted(found)


def _directory_page(root: Path, relative: PurePosixPath, base_url: str, max_bytes: int) -> FetchedPage | None:
    path = root.joinpath(*relative.parts)
    started = time.perf_counter()
    try:
        if not path.resolve(strict=True).is_relative_to(root):
            log.warning("skipping %s: it links outside %s", path, root)
            return None
        stat = path.stat()
        if not path.is_file() or stat.st_size > max_bytes:  # FIFOs and devices would block or never end
            log.warning("skipping %s: not a regular file of at most %d bytes", path, max_bytes)
            return None
        data = path.read_bytes()
    except OSError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    # fsencode keeps file names that are not valid UTF-8 (surrogate-escaped) as their original bytes.
    url = canonical(base_url + quote(os.fsencode(str(relative)), safe="/"))
    return FetchedPage(
        url=url,
        final_url=url,
        status=200,
        html=decode_html(data),
        headers={"content-type": "text/html", "last-modified": formatdate(stat.st_mtime, usegmt=True)},
        depth=0,
        elapsed=time.perf_counter() - started,
    )


def directory_pages(
    root: Path,
    base_url: str,
    *,
    max_pages: int | None = None,
    max_bytes: int = 5_000_000,
    on_cap: Callable[[int], None] | None = None,
) -> Iterator[FetchedPage]:
    """Every ``*.html``/``*.htm`` file under ``root`` as a fetched page, in sorted path order.

    A page's URL is ``base_url`` + its percent-encoded POSIX path relative to ``root``. Files that
    cannot be read, are larger than ``max_bytes``, or are symlinks leading outside ``root`` are
    skipped with a logged warning. With ``max_pages``, reading stops after that many pages and
    ``on_cap`` is told how many files were left unread.
    """
    root = root.resolve(strict=True)
    prefix = base_url if base_url.endswith("/") else f"{base_url}/"
    yielded = 0
    files = _html_files(root)
    for position, relative in enumerate(files):
        if max_pages is not None and yielded >= max_pages:
            if on_cap is not None:
                on_cap(len(files) - position)
            return
        page = _directory_page(root, relative, prefix, max_bytes)
        if page is not None:
            yielded += 1
            yield page
