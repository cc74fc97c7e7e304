"""The sweep's driver: which jobs are left, handing them to a backend, and recording what comes back.

Only the driver writes the results store. A job is identified by its words and
the code that runs it (``Job.key``); a run recorded under that key is never run
again, so a sweep killed at any moment and started again finishes the rest, and
two sweeps on one store record each job once (the store refuses a second run
with the same key, in the same transaction that would insert it). A failing
job is recorded as a failure with its one-line error, and tried again by the
next sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from fewshot.core.paths import cache_dir
from fewshot.records.store import ResultsStore
from fewshot.run.job import Job, code_version
from fewshot.sweep.worker import Outcome


class Backend(Protocol):
    name: str

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]: ...


@dataclass
class Report:
    jobs: int
    skipped: int  # recorded before this sweep
    recorded: list[int] = field(default_factory=list)  # run ids this sweep recorded
    taken: int = 0  # finished here, but another sweep on the store recorded the job first
    failed: list[Outcome] = field(default_factory=list)


def unique(jobs: Iterable[Job]) -> list[Job]:
    """The jobs in order, each once (two cells of a grid may name the same job)."""
    return list(dict.fromkeys(jobs))


def pending(jobs: list[Job], store: ResultsStore, code: str, any_code: bool = False) -> list[Job]:
    """The jobs whose run is not yet recorded for this code (or, with ``any_code``, by any code)."""
    if any_code:
        recorded = store.job_keys("job_words")
        return [job for job in jobs if job.key(None) not in recorded]
    recorded = store.job_keys()
    return [job for job in jobs if job.key(code) not in recorded]


def run_sweep(
    jobs: list[Job],
    backend: Backend,
    store: ResultsStore,
    provenance: dict[str, Any],
    progress: bool = True,
    log: Callable[[str], None] = lambda line: None,
    any_code: bool = False,
) -> Report:
    code = code_version(provenance)
    jobs = unique(jobs)
    todo = pending(jobs, store, code, any_code)
    report = Report(len(jobs), len(jobs) - len(todo))
    bar = tqdm(total=len(todo), unit="job", desc="sweep", disable=None if progress else True, dynamic_ncols=True)
    try:
        for outcome in backend.run(todo):
            key = outcome.job.key(code)
            if outcome.ok:
                assert outcome.run is not None, "an outcome that is ok carries its run"
                ran = code_version(outcome.run)
                if ran != code:
                    outcome = Outcome(outcome.job, error=f"the worker ran code {ran}, not the driver's {code}")
            if outcome.ok:
                assert outcome.run is not None, "an outcome that is ok carries its run"
                run = _with_checkpoint(outcome)
                run_id, new = store.record_job(key, outcome.job.key(None), run, outcome.accuracies, outcome.figures)
                if new:
                    report.recorded.append(run_id)
                else:
                    report.taken += 1
                log(f"{outcome.job.label()}: run {run_id}, {run['mean'] * 100:.2f} ± {run['ci95'] * 100:.2f}")
            else:
                store.record_failure(key, outcome.job.fields(), outcome.error)
                report.failed.append(outcome)
                log(f"{outcome.job.label()}: failed: {outcome.error}")
            bar.update(1)
    finally:
        bar.close()
    return report


def _with_checkpoint(outcome: Outcome) -> dict[str, Any]:
    """The run, with the checkpoint a remote worker sent written into this machine's cache (and named so)."""
    assert outcome.run is not None, "only a finished job has a run"
    run = dict(outcome.run)
    if outcome.checkpoint is not None and run.get("checkpoint"):
        from fewshot.core.data import atomic_write

        path = cache_dir() / "checkpoints" / Path(run["checkpoint"]).name
        data = outcome.checkpoint
        atomic_write(path, lambda f: f.write(data))
        run["checkpoint"] = str(path)
    return run
