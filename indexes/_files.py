"""The one atomic file writer of the index layer: a file is replaced whole or not at all.

The content goes to a temporary file in the destination's folder (so the rename stays on one file
system), which is fsynced, renamed over the destination with ``os.replace``, and then the folder is
fsynced too, so the rename itself survives a power loss and not only the bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, content: bytes | Callable[[Path], None]) -> None:
    """Replace ``path`` atomically with ``content``: bytes, or a function that writes the file it is given.

    A function suits writers that stream to a path themselves (``faiss.write_index``, ``np.save``),
    so a large file is never held in memory first.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(tmp_name)
    try:
        if isinstance(content, bytes):
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        else:
            os.close(fd)
            content(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
