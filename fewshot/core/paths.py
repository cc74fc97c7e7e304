"""Where data is read from and where caches and results are written.

Data root: ``--data-root``, else ``$FEWSHOT_DATA``, else the user's cache folder.
Cache (decoded datasets, cached checkpoints): ``$FEWSHOT_CACHE``, else the user's cache folder.
Results: ``--results``, else ``$FEWSHOT_RESULTS``, else the user's data folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable)
    return Path(base) if base else Path.home() / fallback


def cache_dir() -> Path:
    explicit = os.environ.get("FEWSHOT_CACHE")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "fewshot"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("FEWSHOT_DATA")
    return Path(env) if env else cache_dir() / "data"


def results_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("FEWSHOT_RESULTS")
    return Path(env) if env else _xdg("XDG_DATA_HOME", ".local/share") / "fewshot" / "results.sqlite"
