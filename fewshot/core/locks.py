"""A lock file beside a cache entry, so that processes building the same entry take turns.

Cache entries are written through a temporary file and renamed into place, so a
reader never sees half an entry whatever happens; the lock only saves the work
of building one entry twice when several sweep workers need it at once. The
lock is ``flock`` on a ``.lock`` file: the kernel releases it when its holder
dies, so a killed worker never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock`` (created if needed) for the body of the ``with``."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
