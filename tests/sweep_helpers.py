"""Helpers of the sweep tests: a tiny grid, reading what a sweep recorded, and watching its processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

GRID = """\
name = "tiny"
seeds = [0, 1]
learners = ["protonet"]

[[cell]]
dataset = "glyphs"
ways = 5
shots = 1

[tier.smoke]
budget = "{budget}"
episodes = 5
"""


def grid(tmp_path: Path, budget: str = "2steps", extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(GRID.format(budget=budget) + extra)
    return path


def per_job(store: Path) -> dict[str, list[float]]:
    """Each recorded job's per-episode accuracies, by the job's words (its key less the code)."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT id, seed, shots FROM runs ORDER BY id").fetchall()
        return {
            f"seed {seed} shots {shots}": [
                a for (a,) in db.execute("SELECT accuracy FROM episode_results WHERE run_id = ? ORDER BY episode", (i,))
            ]
            for i, seed, shots in rows
        }


def count_runs(store: Path) -> tuple[int, int]:
    """(runs, distinct job keys) in the store; 0s while it does not exist yet."""
    if not store.exists():
        return 0, 0
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*), count(DISTINCT job_key) FROM runs").fetchone()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_sweep(path: Path, store: Path, *words: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fewshot", "sweep", str(path), "--results", str(store), "--quiet", *words],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def training_started(cache: Path) -> bool:
    """Whether a job has taken the lock of a protonet checkpoint in ``cache``: it is training it."""
    return any((cache / "locks").glob("checkpoints-protonet-*.lock")) if (cache / "locks").exists() else False


def sweep_once(folder: Path) -> tuple[Path, dict[str, list[float]], subprocess.CompletedProcess]:
    """The tiny grid swept by one local worker into ``folder``: the reference other ways of running it must match."""
    from conftest import run_cli

    store = folder / "r.sqlite"
    done = run_cli("sweep", str(grid(folder)), "--results", str(store), "--workers", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    return store, per_job(store), done
