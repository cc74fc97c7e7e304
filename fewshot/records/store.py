"""The results store: SQLite in WAL mode, append-only, one transaction per run.

A run is recorded whole or not at all: its row and its per-episode accuracies
go in one transaction, so several processes may write at once and an
interrupted process leaves nothing half-written. Rows are only ever inserted.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from fewshot.core.errors import FewshotError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    learner TEXT NOT NULL,
    hparams TEXT NOT NULL,
    dataset TEXT NOT NULL,
    protocol TEXT NOT NULL,
    split TEXT NOT NULL,
    ways INTEGER NOT NULL,
    shots INTEGER NOT NULL,
    queries INTEGER NOT NULL,
    episodes INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    mean REAL NOT NULL,
    ci95 REAL NOT NULL,
    seconds REAL NOT NULL,
    episodes_per_s REAL NOT NULL,
    episodes_digest TEXT NOT NULL,
    train_budget TEXT,
    train_steps INTEGER,
    train_seconds REAL,
    checkpoint TEXT,
    fewshot_version TEXT,
    code_commit TEXT,
    torch_version TEXT,
    device TEXT,
    host TEXT,
    extra TEXT
);
CREATE TABLE IF NOT EXISTS episode_results (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    episode INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    PRIMARY KEY (run_id, episode)
);
CREATE INDEX IF NOT EXISTS runs_cell ON runs (dataset, protocol, ways, shots, learner);
"""

RUN_FIELDS = (
    "created", "learner", "hparams", "dataset", "protocol", "split", "ways", "shots", "queries", "episodes", "seed",
    "mean", "ci95", "seconds", "episodes_per_s", "episodes_digest", "train_budget", "train_steps", "train_seconds",
    "checkpoint", "fewshot_version", "code_commit", "torch_version", "device", "host", "extra",
)


def check_writable(path: Path) -> None:
    """Fail early, before any work is done, if results could not be recorded at ``path``."""
    path = Path(path)
    if path.exists():
        if path.is_dir() or not os.access(path, os.W_OK):
            raise FewshotError(f"cannot write results to {path}: not a writable file; choose another with --results")
        try:
            with closing(_connect(path)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as err:
            raise FewshotError(f"{path} is not a fewshot results file ({err}); choose another with --results") from None
        return
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise FewshotError(f"cannot write results to {path}: {parent} is not a writable folder; choose another with --results")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 60000")
    return db


class ResultsStore:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _open(self, create: bool) -> sqlite3.Connection:
        if not create and not self.path.exists():
            raise FewshotError(f"no results at {self.path}: run `fewshot eval` first, or point --results at a results file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(self.path)
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise FewshotError(f"cannot use results file {self.path} ({err}); choose another with --results") from None
        db.row_factory = sqlite3.Row
        return db

    def record(self, run: dict[str, Any], accuracies: Iterable[float]) -> int:
        """Insert a run and its per-episode accuracies in one transaction; returns the run id."""
        row = {k: run.get(k) for k in RUN_FIELDS}
        for key in ("hparams", "extra"):
            if not isinstance(row[key], str):
                row[key] = json.dumps(row[key] or {}, sort_keys=True)
        with closing(self._open(create=True)) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                cursor = db.execute(
                    f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({', '.join('?' * len(RUN_FIELDS))})",
                    [row[k] for k in RUN_FIELDS])
                run_id = int(cursor.lastrowid)
                db.executemany("INSERT INTO episode_results (run_id, episode, accuracy) VALUES (?, ?, ?)",
                               [(run_id, i, float(a)) for i, a in enumerate(accuracies)])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return run_id

    def runs(self) -> list[dict[str, Any]]:
        with closing(self._open(create=False)) as db:
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]

    def run(self, run_id: int) -> dict[str, Any]:
        with closing(self._open(create=False)) as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise FewshotError(f"no run {run_id} in {self.path}: `fewshot leaderboard` lists the runs")
            accuracies = [r[0] for r in db.execute(
                "SELECT accuracy FROM episode_results WHERE run_id = ? ORDER BY episode", (run_id,))]
        return {**dict(row), "accuracies": np.array(accuracies)}
