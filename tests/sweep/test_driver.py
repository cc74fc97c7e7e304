"""The driver alone records: each job once, failures with their one line, and a rerun does only what is left.

A fake backend stands in for the workers here (the real ones are tested in
test_local.py and test_ray.py): what the driver does with outcomes does not
depend on where they were computed.
"""

from __future__ import annotations

import sqlite3

from fewshot.records.provenance import provenance
from fewshot.records.store import ResultsStore
from fewshot.run.job import Job, code_version
from fewshot.sweep import driver
from fewshot.sweep.worker import Outcome

CODE = provenance()


def fake_run(job: Job, code: dict | None = None) -> dict:
    return {
        "learner": job.learner, "hparams": dict(job.hp), "dataset": "glyphs", "protocol": "scripts", "split": "test",
        "ways": 5, "shots": job.shots, "queries": 15, "episodes": 2, "seed": job.seed, "protocol_kind": "episodic",
        "mean": 0.5, "ci95": 0.1, "seconds": 1.0, "episodes_per_s": 2.0, "episodes_digest": "d", **(code or CODE),
    }  # fmt: skip


class FakeBackend:
    name = "fake"

    def __init__(self, failing: frozenset[int] = frozenset(), code: dict | None = None):
        self.failing, self.code = failing, code
        self.ran: list[Job] = []

    def run(self, jobs):
        for job in jobs:
            self.ran.append(job)
            if job.seed in self.failing:
                yield Outcome(job, error="--shots 50 is too many for the split")
            else:
                yield Outcome(job, fake_run(job, self.code), [0.4, 0.6], {})


JOBS = [Job("protonet", shots=shots, seed=seed) for seed in (0, 1, 2) for shots in (1, 5)]


def test_each_job_is_recorded_once_with_its_key_and_a_rerun_runs_nothing(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    first = driver.run_sweep(JOBS + JOBS[:2], FakeBackend(), store, CODE, progress=False)
    assert (first.jobs, first.skipped, len(first.recorded), first.failed) == (6, 0, 6, [])
    keys = {job.key(code_version(CODE)) for job in JOBS}
    assert store.job_keys() == keys
    again = FakeBackend()
    second = driver.run_sweep(JOBS, again, store, CODE, progress=False)
    assert (second.skipped, second.recorded, again.ran) == (6, [], [])


def test_a_failing_job_is_recorded_with_its_line_never_stops_the_others_and_is_tried_again(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    report = driver.run_sweep(JOBS, FakeBackend(failing=frozenset({1})), store, CODE, progress=False)
    assert len(report.recorded) == 4 and [o.job.seed for o in report.failed] == [1, 1]
    failures = store.failures()
    assert [f["error"] for f in failures] == ["--shots 50 is too many for the split"] * 2
    assert failures[0]["job"]["learner"] == "protonet" and failures[0]["job"]["seed"] == 1
    retry = FakeBackend()
    driver.run_sweep(JOBS, retry, store, CODE, progress=False)
    assert [j.seed for j in retry.ran] == [1, 1], "only the failed jobs run again"
    assert len(store.runs()) == 6


def test_a_run_from_other_code_than_the_drivers_is_refused_not_recorded(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    other = {**CODE, "code_commit": "0123456789ab", "code_dirty": False, "code_source_hash": None}
    report = driver.run_sweep(JOBS[:1], FakeBackend(code=other), store, CODE, progress=False)
    assert report.recorded == [] and "the worker ran code 0123456789ab" in report.failed[0].error
    assert not (tmp_path / "r.sqlite").exists() or store.runs() == []


def test_two_sweeps_on_one_store_record_a_job_once(tmp_path):
    """The second driver finished the same job later: the store keeps the first run and says so."""
    store = ResultsStore(tmp_path / "r.sqlite")
    key = JOBS[0].key(code_version(CODE))
    first = store.record_job(key, JOBS[0].key(None), fake_run(JOBS[0]), [0.5])
    second = store.record_job(key, JOBS[0].key(None), fake_run(JOBS[0]), [0.5])
    assert first == (1, True) and second == (1, False)
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        unique = {row[1]: row[2] for row in db.execute("PRAGMA index_list(runs)")}
    assert unique.get("runs_job_key") == 1, "the schema itself refuses a second run with one job key"


def test_with_any_code_a_job_recorded_by_earlier_code_is_not_run_again(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    earlier = {**CODE, "code_commit": "0123456789ab", "code_dirty": False, "code_source_hash": None}
    driver.run_sweep(JOBS[:2], FakeBackend(code=earlier), store, earlier, progress=False)
    assert driver.pending(JOBS, store, code_version(CODE)) == JOBS, "by default, new code runs every job anew"
    assert driver.pending(JOBS, store, code_version(CODE), any_code=True) == JOBS[2:]


def test_job_keys_stay_those_the_recorded_runs_have():
    """Keys recorded by earlier code (leaderboard runs 208 on) must still match: a word added to Job with its
    default leaves every key as it was."""
    job = Job("protonet", "glyphs", ways=5, shots=1, episodes=600, seed=0, threads=1)
    assert (job.key(None), job.key("abc")) == ("933fdc4dc5de0d537d72", "99a72a708facdc7eaeac")
    other = Job("maml", "omniglot", "vinyals", 20, 5, hp=(("lr", "0.1"),), adapt="dann", threads=2)
    assert other.key(None) == "cdb1516ae8a2eb28a45b"
    assert Job("protonet", budget="0steps", allow_untrained=True).key(None) != Job("protonet", budget="0steps").key(
        None
    )
