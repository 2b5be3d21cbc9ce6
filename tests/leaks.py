"""What a test checks to prove a failed call let go of its files."""

from __future__ import annotations

from pathlib import Path


def open_descriptors(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path`` (Linux ``/proc``)."""
    target = str(path.resolve())
    count = 0
    for entry in Path("/proc/self/fd").iterdir():
        try:
            count += str(entry.readlink()) == target
        except OSError:  # the descriptor listing the folder itself is gone by now
            continue
    return count
