"""What a job will cost, from the recorded timings of similar runs.

Training time is taken per step (the median over recorded runs of the same
learner on the same dataset and adaptation), evaluation time per test unit (the
same learner, dataset, ways and shots, else the learner and dataset), from runs
on the same kind of device (a CPU job is not estimated from GPU timings). A job with
no similar run has no estimate; the sweep says how many such jobs there are
rather than guessing.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from fewshot.core import registry
from fewshot.run.job import Job
from fewshot.run.training import Budget

DEFAULT_EPISODES = 600


def budget_steps(job: Job) -> int | None:
    """The training steps the job's budget gives (its learner's default for the dataset when it names none)."""
    text = job.budget
    if text is None:
        defaults = registry.learner(job.learner).default_budget
        dataset = job.dataset or registry.default_dataset()
        text = defaults.get(dataset, defaults.get("*", "1000steps"))
    return Budget.parse(text).steps


class Estimator:
    def __init__(self, runs: Iterable[dict[str, Any]]):
        self.runs = [r for r in runs if r.get("seconds") is not None]

    def seconds(self, job: Job) -> float | None:
        dataset = job.dataset or registry.default_dataset()
        on_gpu = job.device == "cuda"
        same = [
            r
            for r in self.runs
            if r["learner"] == job.learner and r["dataset"] == dataset and (r.get("device") != "cpu") == on_gpu
        ]
        if not same:
            return None
        trained = [
            r["train_seconds"] / r["train_steps"]
            for r in same
            if r.get("train_steps") and r.get("train_seconds") and r.get("adaptation", "none") == job.adapt
        ]
        steps = budget_steps(job)
        if steps and not trained:
            return None
        training = statistics.median(trained) * steps if steps else 0.0
        cell = [r for r in same if (r["ways"], r["shots"]) == (job.ways, job.shots)] or same
        per_unit = statistics.median(r["seconds"] / max(1, r["episodes"]) for r in cell)
        episodes = job.episodes or statistics.median_low(r["episodes"] for r in cell) or DEFAULT_EPISODES
        return training + per_unit * episodes


def hours(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
