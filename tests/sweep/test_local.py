"""The local backend, end to end through ``fewshot sweep``: the same runs on any worker count, each job recorded
once whatever is killed, failures reported and retried, bad input refused before any work."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import run_cli
from records_helpers import disk_full_at
from sweep_helpers import (
    alive,
    children,
    count_runs,
    grid,
    per_job,
    start_sweep,
    sweep_once,
    training_started,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("own_cache")


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    """The tiny grid swept by one worker: the reference every other way of running it must match."""
    return sweep_once(tmp_path_factory.mktemp("one-worker"))


def test_a_sweep_records_every_job_and_a_rerun_finds_nothing_left(one_worker, tmp_path):
    store, runs, done = one_worker
    assert len(runs) == 2 and all(len(a) == 5 for a in runs.values())
    assert "2 runs recorded" in done.stdout and "0 failed" in done.stdout
    again = run_cli("sweep", str(grid(tmp_path)), "--results", str(store), "--quiet")
    assert again.returncode == 0 and "nothing to run" in again.stdout
    assert count_runs(store) == (2, 2)


def test_two_workers_give_the_same_runs_as_one(one_worker, tmp_path):
    store = tmp_path / "r.sqlite"
    done = run_cli("sweep", str(grid(tmp_path)), "--results", str(store), "--workers", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert per_job(store) == one_worker[1]


def test_a_failing_job_is_reported_at_the_end_with_its_command_and_the_others_recorded(one_worker, tmp_path):
    impossible = '\n[[cell]]\ndataset = "glyphs"\nways = 5\nshots = 500\n'
    store = tmp_path / "r.sqlite"
    done = run_cli("sweep", str(grid(tmp_path, extra=impossible)), "--results", str(store), "--quiet")
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2 and all("--shots 500" in line or "500" in line for line in failed), done.stdout
    assert "rerun alone: " in done.stdout and "--shots 500" in done.stdout
    assert count_runs(store) == (2, 2)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM job_failures").fetchone()[0] == 2


def test_dry_run_lists_the_jobs_left_with_their_cost_and_runs_nothing(one_worker, tmp_path):
    store = one_worker[0]
    longer = grid(tmp_path, budget="3steps")
    done = run_cli("sweep", str(longer), "--results", str(store), "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all("fewshot eval --learner protonet" in line for line in lines[:2])
    assert all(line.split()[0] != "?" for line in lines[:2]), "similar runs are recorded: each job has a cost"
    assert "2 to run" in lines[-1] and "estimated" in lines[-1]
    assert count_runs(store) == (2, 2)
    refused = run_cli("sweep", str(longer), "--results", str(store), "--max-hours", "0.000001")
    assert refused.returncode == 2 and "over --max-hours" in refused.stderr and "--yes" in refused.stderr
    assert count_runs(store) == (2, 2), "refused before any work"


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["--tier", "gpu"], "no [tier.gpu]"),
        (["--address", "127.0.0.1:6379"], "--address names a Ray cluster"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_words_are_one_line_and_exit_2(tmp_path, words, expected):
    store = tmp_path / "r.sqlite"
    done = run_cli("sweep", str(grid(tmp_path)), "--results", str(store), *words)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not store.exists()


def test_an_unknown_learner_names_the_grid_file_and_line(tmp_path):
    path = grid(tmp_path)
    path.write_text(path.read_text().replace('"protonet"', '"protonett"'))
    done = run_cli("sweep", str(path), "--results", str(tmp_path / "r.sqlite"))
    assert done.returncode == 2 and done.stderr.startswith(f"error: {path}:3: unknown learner 'protonett'")


def test_ray_missing_says_how_to_install_it(tmp_path):
    hide = tmp_path / "no-ray"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('No module named ray')\n")
    done = run_cli(
        "sweep", str(grid(tmp_path)), "--results", str(tmp_path / "r.sqlite"), "--backend", "ray",
        env={"PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert done.returncode == 2 and "pip install 'fewshot[ray]'" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_job_gets_the_job_run_again_and_recorded_once(one_worker, tmp_path):
    store = tmp_path / "r.sqlite"
    module_cache = os.environ["FEWSHOT_CACHE"]
    os.environ["FEWSHOT_CACHE"] = str(tmp_path / "cache")  # a cache of its own: the job must train, not reuse
    try:
        sweep = start_sweep(grid(tmp_path, budget="2steps"), store, "--workers", "1")
        wait_for(lambda: training_started(tmp_path / "cache"))
        (worker,) = children(sweep.pid)[-1:]
        os.kill(worker, signal.SIGKILL)
        out, err = sweep.communicate(timeout=600)
    finally:
        os.environ["FEWSHOT_CACHE"] = module_cache
    assert sweep.returncode == 0, err
    assert count_runs(store) == (2, 2) and "2 runs recorded" in out
    assert per_job(store) == one_worker[1], "the retried job gives the runs an undisturbed sweep gives"


@pytest.mark.slow
def test_a_driver_killed_at_any_moment_and_started_again_records_every_job_once(one_worker, tmp_path):
    store = tmp_path / "r.sqlite"
    path = grid(tmp_path, extra='\n[[cell]]\ndataset = "glyphs"\nways = 5\nshots = 2\n')
    for delay in (1.0, 4.0, 8.0):  # while importing, while training, around the first records
        sweep = start_sweep(path, store, "--workers", "2")
        time.sleep(delay)
        workers = children(sweep.pid)
        sweep.kill()
        sweep.wait()
        wait_for(lambda pids=workers: not any(alive(w) for w in pids), timeout=30)  # they die with their driver
    final = run_cli("sweep", str(path), "--results", str(store), "--quiet")
    assert final.returncode == 0, final.stderr
    assert count_runs(store) == (4, 4)
    runs = per_job(store)
    assert {k: v for k, v in runs.items() if k in one_worker[1]} == one_worker[1]


@pytest.mark.slow
def test_two_sweeps_of_one_grid_on_one_store_at_once_record_each_job_once(one_worker, tmp_path):
    store = tmp_path / "r.sqlite"
    path = grid(tmp_path)
    sweeps = [start_sweep(path, store, "--workers", "1") for _ in range(2)]
    outputs = [sweep.communicate(timeout=600) for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], [err for _, err in outputs]
    assert count_runs(store) == (2, 2)
    assert per_job(store) == one_worker[1]


@pytest.mark.slow
def test_a_full_disk_during_a_sweep_records_nothing_half_written_and_a_rerun_finishes(one_worker, tmp_path):
    """No file may grow past the store's size: the jobs cannot write their checkpoints (each is then recorded as a
    failure, a small write the store has room for) or the store cannot take a run (the sweep stops with one line).
    Either way no run of the grid is recorded, nothing is left beside the store, and with room again a rerun
    records each job once."""
    store = tmp_path / "r.sqlite"
    shutil.copy(one_worker[0], store)  # a store holding other runs: this grid trains longer, so its jobs are new
    path = grid(tmp_path, budget="3steps")
    done = subprocess.run(
        [sys.executable, "-m", "fewshot", "sweep", str(path), "--results", str(store), "--quiet"],
        capture_output=True,  # pipes: a full disk does not stop what the sweep prints
        text=True,
        preexec_fn=disk_full_at(store.stat().st_size),
        timeout=600,
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    if done.returncode == 1:
        failed = [line for line in done.stdout.splitlines() if line.startswith("failed: ")]
        assert len(failed) == 2 and all("File too large" in line for line in failed), done.stdout
    else:
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: "), done.stderr
    assert count_runs(store) == (2, 2), "no run of the grid recorded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite", "tiny.toml"], "nothing beside the store"
    again = run_cli("sweep", str(path), "--results", str(store), "--quiet")
    assert again.returncode == 0, again.stderr
    assert count_runs(store) == (4, 4)
