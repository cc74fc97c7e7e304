"""A lock file for each cache entry, so that processes building the same entry take turns.

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

from fewshot.core.errors import FewshotError


def cache_lock(entry: Path) -> contextlib.AbstractContextManager[None]:
    """The lock of a cache entry, in the cache's ``locks/`` folder (its entries' folders hold only entries)."""
    from fewshot.core.paths import cache_dir

    return file_lock(cache_dir() / "locks" / f"{entry.parent.name}-{entry.name}.lock")


@contextlib.contextmanager
def file_lock(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (created if needed) for the body of the ``with``."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise FewshotError(
            f"cannot create {lock} ({err.strerror or err}); set FEWSHOT_CACHE to a writable folder"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
