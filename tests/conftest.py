"""Shared fixtures: a private cache and results folder per test session, and the real datasets.

Tests that need ``../shared/data`` skip on a developer's machine without it,
but fail when ``CI`` is set: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    return Path(os.environ.get("FEWSHOT_DATA") or REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def private_folders(tmp_path_factory):
    """Decoded datasets and cached checkpoints go to a folder of this session, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("FEWSHOT_CACHE", "FEWSHOT_RESULTS")}
    os.environ["FEWSHOT_CACHE"] = str(cache)
    os.environ["FEWSHOT_RESULTS"] = str(tmp_path_factory.mktemp("results") / "results.sqlite")
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "omniglot" / "images_background.npz").exists():
        message = f"the shared datasets are not at {root}: set FEWSHOT_DATA"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ["FEWSHOT_DATA"] = str(root)
    return root


@pytest.fixture(scope="session")
def omniglot(data_root):
    from fewshot.run.experiment import open_benchmark

    return {p: open_benchmark("omniglot", p, data_root) for p in ("vinyals", "lake", "lake-runs")}


@pytest.fixture(scope="session")
def glyphs():
    from fewshot.run.experiment import open_benchmark

    return open_benchmark("glyphs", None)


def run_main(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line in this process: its exit status, stdout and stderr."""
    from fewshot.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capfd.readouterr()
    return int(exit_info.value.code or 0), out, err


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The installed command line in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fewshot", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="session")
def glyphs_zsl():
    from fewshot.run.experiment import open_benchmark

    return open_benchmark("glyphs", "zsl")
