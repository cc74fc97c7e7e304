"""One evaluation configuration, from its words to the row the store records.

``fewshot eval`` runs one job in its own process and records it; ``fewshot sweep``
runs many, in worker processes or Ray tasks, and its driver records what they
send back. Both go through ``plan`` (every check, before any work) and
``execute`` (training when needed, then evaluation), so a sweep's run is the run
the same ``eval`` command line would have recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewshot.core.learner import parse_hp_options
from fewshot.core.protocol import Words
from fewshot.run import experiment
from fewshot.run.evaluation import EvalResult
from fewshot.run.training import Budget

KEY_HEX_CHARS = 20


# Words added to Job after runs were first recorded with job keys, and their defaults.
LATER_WORDS: dict[str, Any] = {"allow_untrained": False, "select": None, "val_images": None}


@dataclass(frozen=True)
class Job:
    """The words of one ``fewshot eval`` command line; None leaves a word to its default."""

    learner: str
    dataset: str | None = None
    protocol: str | None = None
    ways: int | str | None = None
    shots: int | None = None
    queries: int | None = None
    episodes: int | None = None
    seed: int = 0
    kind: str | None = None  # a protocol chosen by its flag (per-instance)
    options: tuple[tuple[str, int], ...] = ()  # that protocol's own integer options
    side: str | None = None
    hp: tuple[tuple[str, str], ...] = ()
    budget: str | None = None
    adapt: str = "none"
    source: str | None = None
    target: str | None = None
    target_labels: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch's intra-op threads; None: torch's own choice
    allow_untrained: bool = False  # with budget "0steps": score the untrained network
    select: str | None = None  # a model-selection regime: score validation data (fewshot.core.selection)
    val_images: int | None = None  # the images that regime holds out; None: its default
    variant: str = field(default="", compare=False)  # the grid's name for the hyperparameters, for display only

    def fields(self) -> dict[str, Any]:
        """The identity of the job: every word, the display-only variant name left out.

        A word added after the first sweeps were recorded enters the identity only when it is set, so adding a word
        keeps the keys of the runs already recorded (and a rerun of their grid skips them).
        """
        words = dataclasses.asdict(self)
        words.pop("variant")
        for name, default in LATER_WORDS.items():
            if words[name] == default:
                del words[name]
        words["options"] = dict(self.options)
        words["hp"] = dict(self.hp)
        return words

    def key(self, code: str | None) -> str:
        """The job's identity under ``code`` (a code version): a rerun of the same words on the same code has it.
        With ``code`` None, the key of the words alone, whatever code runs them."""
        identity = {"job": self.fields(), "code": code} if code is not None else {"job": self.fields()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:KEY_HEX_CHARS]

    def command(self) -> str:
        """The ``fewshot eval`` command line that runs this job alone."""
        words = ["fewshot", "eval", "--learner", self.learner]
        for name in ("dataset", "protocol", "ways", "shots", "queries", "episodes", "side", "budget"):
            value = getattr(self, name)
            if value is not None:
                words += [f"--{name}", str(value)]
        words += ["--seed", str(self.seed)]
        if self.kind:
            words.append(f"--{self.kind}")
        for name, value in self.options:
            words += [f"--{name}", str(value)]
        for name, value in self.hp:
            words += ["--hp", f"{name}={value}"]
        if self.adapt != "none":
            words += ["--adapt", self.adapt]
        for name in ("source", "target"):
            if getattr(self, name):
                words += [f"--{name}", str(getattr(self, name))]
        if self.target_labels:
            words += ["--target-labels", str(self.target_labels)]
        if self.select:
            words += ["--select", self.select]
        if self.val_images is not None:
            words += ["--val-images", str(self.val_images)]
        if self.device != "auto":
            words += ["--device", self.device]
        if self.allow_untrained:
            words.append("--allow-untrained")
        prefix = f"OMP_NUM_THREADS={self.threads} " if self.threads else ""
        return prefix + shlex.join(words)

    def label(self) -> str:
        """A short name for progress lines and reports."""
        cell = f"{self.ways or '-'}w{self.shots if self.shots is not None else '-'}s"
        shift = f" {self.source}->{self.target}" if self.source else ""
        method = f" +{self.adapt}" if self.adapt != "none" else ""
        variant = f"[{self.variant}]" if self.variant else ""
        select = f" select {self.select}" if self.select else ""
        return f"{self.learner}{variant}{method} {self.dataset or 'default'}{shift} {cell}{select} seed {self.seed}"


def code_version(provenance: dict[str, Any]) -> str:
    """The code a run came from, as one string: the commit (with the difference's hash when the tree was dirty),
    else the installed sources' hash, else the version."""
    commit = provenance.get("code_commit")
    if commit:
        dirty = provenance.get("code_diff_hash") if provenance.get("code_dirty") else None
        return f"{commit}+{dirty}" if dirty else str(commit)
    if provenance.get("code_source_hash"):
        return f"source:{provenance['code_source_hash']}"
    return f"version:{provenance.get('fewshot_version')}"


@dataclass
class Planned:
    """A job whose every word has been checked: what ``execute`` trains and evaluates."""

    job: Job
    setup: experiment.Setup
    budget: Budget | None  # None: evaluate the --checkpoint given
    device: torch.device


@dataclass
class Executed:
    """What a job produced: the store's row and the per-unit accuracies and figures recorded beside it."""

    run: dict[str, Any]
    accuracies: list[float]
    figures: dict[str, float]
    result: EvalResult
    trained: experiment.Trained


def plan(job: Job, data_root: str | Path | None = None, checkpoint: Path | None = None) -> Planned:
    """Check the job's words against the registry, the dataset and the protocol; nothing is trained or written."""
    overrides = parse_hp_options(tuple(f"{k}={v}" for k, v in job.hp))
    device = experiment.resolve_device(job.device)
    experiment.check_budget(job.budget, job.allow_untrained)  # a malformed or zero budget fails before any work
    bench = experiment.open_benchmark(
        job.dataset,
        job.protocol,
        data_root,
        source=job.source,
        target=job.target,
        target_labels=job.target_labels,
        select=job.select,
        val_images=job.val_images,
    )
    words = Words(job.ways, job.shots, job.queries, job.episodes, job.seed, job.kind, dict(job.options))
    cell = experiment.resolve_cell(
        bench, words.ways, words.shots, words.queries, words.episodes, words.seed, words.kind, **words.options
    )
    setup = experiment.make_setup(job.learner, overrides, bench, cell, job.side, job.adapt, job.target_labels)
    setup.protocol.test_source(setup)  # an impossible cell (too many shots for the split) fails before any training
    budget = None if checkpoint else experiment.default_budget(setup, job.budget, job.allow_untrained)
    return Planned(job, setup, budget, device)


def execute(
    planned: Planned,
    checkpoint: Path | None = None,
    use_cache: bool | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> Executed:
    """Train (or reuse the cached checkpoint, or load ``checkpoint``), evaluate, and build the run's row."""
    setup, device = planned.setup, planned.device
    if planned.job.threads:
        torch.set_num_threads(planned.job.threads)
    if checkpoint is not None:
        trained = experiment.load_trained(setup, Path(checkpoint), device)
    else:
        assert planned.budget is not None, "plan gives a budget whenever no checkpoint is given"
        trained = experiment.ensure_trained(setup, planned.budget, device, progress=progress, log=log)
    result = experiment.evaluate_setup(setup, trained.learner, device, use_cache=use_cache, progress=progress, log=log)
    figures = setup.protocol.figures(result)
    run = experiment.run_record(setup, trained, result, device)
    return Executed(run, [float(a) for a in result.accuracies], figures, result, trained)
