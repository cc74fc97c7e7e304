"""The local backend: a pool of worker processes on this machine.

Each worker runs one job at a time with the threads its tier gives (one by
default), so workers x threads stays within the cores: oversubscribing two
cores with two 2-thread processes slowed small operations tenfold here. Workers
are started with ``spawn`` (a fresh interpreter: no torch thread pool or open
file inherited from the driver). When a worker dies (killed, out of memory) the
pool is rebuilt and the jobs it was running are tried again, up to a limit.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from fewshot.run.job import Job
from fewshot.sweep.worker import Outcome, run_job, start_worker

ATTEMPTS = 3  # a job whose worker dies this many times is reported as failed


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(threads: int) -> int:
    return max(1, cores() // max(1, threads))


class LocalBackend:
    name = "local"

    def __init__(self, workers: int, threads: int, data_root: str | None = None):
        self.workers, self.threads, self.data_root = workers, threads, data_root

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Each job's outcome as it finishes (not in order)."""
        pending = list(jobs)
        attempts = dict.fromkeys(pending, 0)
        while pending:
            pool = self._pool()
            running: dict[Future[Outcome], Job] = {}
            try:
                running = {pool.submit(run_job, job, self.data_root): job for job in pending}
                pending = []
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = running.pop(future)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:  # a worker died; every job the pool held comes back here
                            attempts[job] += 1
                            if attempts[job] < ATTEMPTS:
                                pending.append(job)
                                continue
                            outcome = Outcome(job, error=f"its worker process died {ATTEMPTS} times")
                        yield outcome
            finally:
                # An interrupted driver does not wait for the jobs still running: their checkpoints resume next time.
                pool.shutdown(wait=not pending and not running, cancel_futures=True)

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self.threads,),
        )
