"""Which code produced a run: the columns of provenance every recorded run carries.

From a git checkout: the commit, whether the work tree differed from it, and a
hash of the difference (so two dirty runs can be told apart). From an installed
wheel, where there is no git: the version and a hash of the installed sources.

Results stores are data, not code: a changed ``*.sqlite`` file (recording into
the committed leaderboard store changes it) does not make the tree dirty, or
every run after the first would be.

Nothing here raises: what cannot be found out is None (unknown).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 10
HASH_HEX_CHARS = 16
NOT_CODE = (":(exclude)*.sqlite", ":(exclude)*.sqlite-journal", ":(exclude)*.sqlite-wal", ":(exclude)*.sqlite-shm")


def provenance(package_dir: Path | None = None) -> dict[str, Any]:
    """The provenance columns of a run, for code under ``package_dir`` (default: the installed fewshot package).

    Keys: fewshot_version, code_commit, code_dirty, code_diff_hash, code_source_hash, torch_version,
    python_version, host. Computed once per process and folder: a sweep records many runs with the code it loaded.
    """
    if package_dir is None:
        import fewshot

        package_dir = Path(fewshot.__file__).parent
    return dict(_provenance(Path(package_dir).resolve()))


@functools.cache
def _provenance(package_dir: Path) -> dict[str, Any]:
    top = _work_tree(package_dir)
    commit = _git_text(top, "rev-parse", "--short=12", "HEAD") if top else None
    dirty = _is_dirty(top) if top and commit else None
    return {
        "fewshot_version": _fewshot_version(),
        "code_commit": commit,
        "code_dirty": dirty,
        "code_diff_hash": _diff_hash(top) if top and dirty else None,
        "code_source_hash": None if commit else _source_hash(package_dir),
        "torch_version": _torch_version(),
        "python_version": platform.python_version(),
        "host": platform.node(),
    }


def _git(folder: Path, *args: str) -> bytes | None:
    """Git's output in ``folder``, or None when git is missing, fails or takes too long."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_text(folder: Path, *args: str) -> str | None:
    out = _git(folder, *args)
    if out is None:
        return None
    return out.decode(errors="replace").strip() or None


def _work_tree(package_dir: Path) -> Path | None:
    """The top of the git work tree that tracks the package's sources; None for an installed copy (even one
    sitting in an ignored folder of some work tree, such as a virtual environment inside a checkout)."""
    if not _git(package_dir, "ls-files", "--", "."):
        return None
    top = _git_text(package_dir, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def _is_dirty(top: Path) -> bool | None:
    """Whether any tracked file differs from HEAD, or any file is untracked and not ignored."""
    status = _git(top, "status", "--porcelain", "--untracked-files=all", "--", ".", *NOT_CODE)
    return None if status is None else bool(status.strip())


def _diff_hash(top: Path) -> str | None:
    """sha256 of ``git diff HEAD`` and of the names and bytes of untracked files that are not ignored."""
    diff = _git(top, "diff", "HEAD", "--binary", "--", ".", *NOT_CODE)
    untracked = _git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", *NOT_CODE)
    if diff is None or untracked is None:
        return None
    digest = hashlib.sha256(diff)
    for name in sorted(n for n in untracked.split(b"\0") if n):
        digest.update(b"\0" + name + b"\0")
        try:
            digest.update((top / name.decode(errors="surrogateescape")).read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()[:HASH_HEX_CHARS]


def _source_hash(package_dir: Path) -> str | None:
    """sha256 over the package's .py files, by relative path: which installed code ran, where git cannot say."""
    digest = hashlib.sha256()
    try:
        files = sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)
        for path in files:
            relative = path.relative_to(package_dir).as_posix().encode()
            content = path.read_bytes()
            digest.update(b"%d:%s%d:" % (len(relative), relative, len(content)) + content)
    except OSError:
        return None
    return digest.hexdigest()[:HASH_HEX_CHARS] if files else None


def _fewshot_version() -> str | None:
    try:
        import fewshot

        return fewshot.__version__
    except (ImportError, AttributeError):
        return None


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__
