"""What a sweep worker does with one job: run it and send back the run, or the one-line reason it failed.

A worker never writes the results store: the driver alone records, so a node of
a cluster needs no shared filesystem beyond the raw datasets. What travels back
is plain data (the run's row, its per-unit accuracies and figures, and the
checkpoint's bytes when asked), small enough to pickle.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a worker imports torch only once its threads are set
    from fewshot.run.job import Job


@dataclass
class Outcome:
    job: Job
    run: dict[str, Any] | None = None  # None when the job failed
    accuracies: list[float] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    error: str = ""  # one line
    seconds: float = 0.0
    checkpoint: bytes | None = None  # the trained checkpoint, when asked for

    @property
    def ok(self) -> bool:
        return self.run is not None


def set_threads(threads: int | None) -> None:
    """Fix the job's intra-op threads before torch starts its pools (it reads the variables once, at import)."""
    if threads:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def start_worker(threads: int | None) -> None:
    """A local worker's set-up: its threads, and death with the driver (a sweep killed with ``kill -9`` must not
    leave workers training on with no one to record their runs; their partial checkpoints resume next time)."""
    set_threads(threads)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # not glibc: the worker ends when it next reads from the driver's closed queue
        if os.getppid() == 1:  # the driver died before the request was made
            os._exit(1)


def run_job(job: Job, data_root: str | None = None, with_checkpoint: bool = False) -> Outcome:
    """Run one job to its outcome; every error becomes the outcome's one-line reason, never an exception."""
    from fewshot.core.errors import FewshotError
    from fewshot.run import job as jobs

    set_threads(job.threads)
    started = time.perf_counter()
    try:
        done = jobs.execute(jobs.plan(job, data_root))
    except FewshotError as err:
        return Outcome(job, error=_one_line(str(err)), seconds=time.perf_counter() - started)
    except Exception as err:  # noqa: BLE001 - a job's bug must not stop the sweep; it is reported with its type
        traceback.print_exc(file=sys.stderr)
        return Outcome(job, error=_one_line(f"{type(err).__name__}: {err}"), seconds=time.perf_counter() - started)
    checkpoint = None
    if with_checkpoint and done.run.get("checkpoint"):
        checkpoint = Path(done.run["checkpoint"]).read_bytes()
    return Outcome(
        job, done.run, done.accuracies, done.figures, seconds=time.perf_counter() - started, checkpoint=checkpoint
    )


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed without a message"
