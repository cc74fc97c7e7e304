"""Wall time of one grid's tier swept by 1 and by N local workers, each from an empty cache and store.

Usage: FEWSHOT_DATA=../shared/data python benchmarks/sweep_workers.py [--grid glyphs] [--tier smoke] [--workers 2]

Each sweep starts from a fresh cache (so every job trains, as on a new machine) and a fresh store, one thread
per job (the tier's), through the command line a user runs. The reference is the one-worker sweep of the same
jobs in the same run; ``speedup`` is its wall time over the N-worker sweep's (at most N on N free cores), and
``same_runs`` says whether both sweeps recorded identical per-episode accuracies for every job (they must:
a cell's numbers do not depend on the worker count). Prints one JSON line, last.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(grid: str, tier: str, workers: int, folder: Path) -> tuple[float, dict, int]:
    """(wall seconds, per-episode accuracies by job words key, failed jobs) of one sweep into ``folder``."""
    env = {**os.environ, "FEWSHOT_CACHE": str(folder / "cache"), "OMP_NUM_THREADS": "1"}
    store = folder / "results.sqlite"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fewshot", "sweep", grid, "--tier", tier, "--workers", str(workers), "--quiet",
         "--results", str(store)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"the {workers}-worker sweep failed: {done.stderr.strip().splitlines()[-1]}")
    with sqlite3.connect(store) as db:
        runs = {
            words: [
                a for (a,) in db.execute("SELECT accuracy FROM episode_results WHERE run_id = ? ORDER BY episode", (i,))
            ]
            for i, words in db.execute("SELECT id, job_words FROM runs")
        }
        failed = db.execute("SELECT count(*) FROM job_failures").fetchone()[0]
    return seconds, runs, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="glyphs")
    parser.add_argument("--tier", default="smoke")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        one_s, one, one_failed = sweep(args.grid, args.tier, 1, Path(scratch) / "one")
        many_s, many, many_failed = sweep(args.grid, args.tier, args.workers, Path(scratch) / "many")
    print(
        json.dumps(
            {
                "grid": args.grid,
                "tier": args.tier,
                "jobs": len(one),
                "failed": one_failed + many_failed,
                "one_worker_s": round(one_s, 1),
                f"workers_{args.workers}_s": round(many_s, 1),
                "speedup": round(one_s / many_s, 2),
                "same_runs": one == many,
                "cores": len(os.sched_getaffinity(0)),
            }
        )
    )


if __name__ == "__main__":
    main()
