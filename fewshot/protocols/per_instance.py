"""Santoro et al.'s per-instance protocol: an episode's images as one labelled sequence.

An episode of N classes x K instances (support only) is shown in a random
order fixed by the episode. At each step the learner predicts the image's
label before seeing it; the label arrives with the next step. The score is
accuracy by presentation: over the steps that show a class for the k-th time,
k = 1..K (the first presentation can only be a guess). A learner takes part
by implementing ``predict_sequences``; the engine knows nothing else of it.
Two runs pair sequence by sequence, on the accuracy over all steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner
from fewshot.core.protocol import Cell, Protocol, Section, Words
from fewshot.core.sampler import EpisodePlan, EpisodeSource
from fewshot.core.stats import mean_interval
from fewshot.run.evaluation import EvalResult, episodes_digest

if TYPE_CHECKING:
    from fewshot.core.data import Benchmark
    from fewshot.run.experiment import Setup

SANTORO_PRESENTATIONS = (1, 2, 3, 4, 5, 10)


def sequence_order(plan: EpisodePlan) -> np.ndarray:
    """The order of the episode's support images in its sequence: a pure function of the episode."""
    return np.random.Generator(np.random.Philox(key=plan.seed)).permutation(len(plan.support_items))


def presentations(labels: torch.Tensor) -> torch.Tensor:
    """For each step of ``labels`` [B, T], how many times its class has been shown up to and including it."""
    one_hot = torch.nn.functional.one_hot(labels)
    return (one_hot.cumsum(dim=1) * one_hot).sum(dim=2)


def accuracy_by_presentation(correct: torch.Tensor, labels: torch.Tensor, instances: int) -> torch.Tensor:
    """[B, instances]: per sequence, the share of correct steps among those showing a class for the k-th time."""
    shown = presentations(labels) - 1
    if int(shown.max()) >= instances:
        raise ValueError(f"a class is shown more than {instances} times")
    hits = torch.zeros(labels.shape[0], instances, dtype=torch.float64)
    counts = torch.zeros_like(hits)
    hits.scatter_add_(1, shown, correct.double())
    counts.scatter_add_(1, shown, torch.ones_like(hits[:, :1]).expand_as(shown).contiguous())
    return hits / counts


def evaluate_sequences(
    learner: Learner,
    source: EpisodeSource,
    episodes: int,
    instances: int,
    device: torch.device | str = "cpu",
    batch: int = 50,
    progress: bool = False,
) -> EvalResult:
    """Per-instance accuracy of ``learner`` on episodes ``0..episodes-1`` of ``source`` (support sets only)."""
    was_training = learner.training
    learner.eval()
    start = time.perf_counter()
    plans = [source.plan(i) for i in range(episodes)]
    by_presentation = np.empty((episodes, instances))
    overall = np.empty(episodes)
    bar = tqdm(total=episodes, desc="evaluate", unit="ep", disable=None if progress else True, leave=False)
    try:
        for first in range(0, episodes, batch):
            chunk = plans[first : first + batch]
            orders = [torch.from_numpy(sequence_order(plan)) for plan in chunk]
            episodes_ = [source.materialize(plan) for plan in chunk]
            x = torch.stack([e.support_x[o] for e, o in zip(episodes_, orders)]).to(device)
            y = torch.stack([e.support_y[o] for e, o in zip(episodes_, orders)]).to(device)
            with torch.no_grad():
                logits = learner.predict_sequences(x, y)
            ways = episodes_[0].ways
            if tuple(logits.shape) != (*y.shape, ways):
                raise RuntimeError(
                    f"predict_sequences returned shape {tuple(logits.shape)}, expected {(*y.shape, ways)}"
                )
            correct = (logits.argmax(2) == y).cpu()
            by_presentation[first : first + len(chunk)] = accuracy_by_presentation(correct, y.cpu(), instances).numpy()
            overall[first : first + len(chunk)] = correct.double().mean(1).numpy()
            bar.update(len(chunk))
    finally:
        bar.close()
        learner.train(was_training)
    return EvalResult(
        overall, time.perf_counter() - start, episodes_digest(plans), False, by_presentation=by_presentation
    )


def presentation_summary(by_presentation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy at each presentation and its 95% interval over sequences."""
    return by_presentation.mean(0), np.array([mean_interval(column) for column in by_presentation.T])


LEGEND = """`fewshot eval --per-instance`: each test sequence shows the classes' images in a random order and the learner
predicts each label before it is given. Accuracy in percent (± 95% interval over sequences) at the k-th
presentation of a class; the paper's MANN and the human figures it quotes are below the measured rows."""


class PerInstance(Protocol):
    kind = "per-instance"
    summary = "Santoro et al.'s labelled sequences: accuracy at the k-th presentation of a class"
    unit = "sequence"
    order = 40
    flag_help = (
        "Santoro et al.'s protocol: --ways classes x --instances images as one labelled sequence, "
        "scored by presentation."
    )
    options = {"instances": (10, "With --per-instance: images of each class in a sequence")}

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        from fewshot.protocols.episodic import Episodic

        if bench.fixed_cell:
            raise FewshotError(
                f"{bench.dataset}/{bench.protocol} is a set of fixed runs; --per-instance needs a "
                f"protocol with a class split (for example --protocol vinyals)"
            )
        for name in ("shots", "queries"):
            if getattr(words, name) is not None:
                raise FewshotError(
                    f"--per-instance shows --instances images per class as one sequence; leave out --{name}"
                )
        instances = words.options.get("instances")
        instances = self.options["instances"][0] if instances is None else instances
        if instances < 1:
            raise FewshotError(f"--instances must be at least 1, got {instances}")
        # The episode of a sequence is an episode with one query per class, whose queries go unused.
        episodic = Episodic().resolve(
            bench, replace(words, ways=5 if words.ways is None else words.ways, shots=instances, queries=1)
        )
        return replace(episodic, queries=0, kind=self.kind)

    def check(self, name: str, learner: type[Learner], cell: Cell) -> None:
        if not learner.predicts_sequences():
            raise FewshotError(
                f"{name} does not predict labelled sequences, so it cannot run --per-instance; "
                f"choose a learner that implements predict_sequences (see `fewshot learners`)"
            )

    def validator(self, setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
        from fewshot.core.sampler import EpisodeSampler
        from fewshot.protocols.episodic import VALIDATION_EPISODES

        split, cell = setup.bench.split("val"), setup.cell
        if split is None:
            return None
        # a sequence has no queries: validation episodes have none either
        sampler = EpisodeSampler(
            setup.bench.data,
            split,
            min(cell.ways, len(split)),
            cell.shots,
            0,
            cell.seed,
            role="val",
            name=f"the {cell.dataset}/{cell.protocol} val split",
        )
        return lambda: evaluate_sequences(learner, sampler, VALIDATION_EPISODES, cell.shots, device).mean

    def test_source(self, setup: Setup) -> EpisodeSource:
        from fewshot.run.experiment import test_source

        return test_source(setup.bench, setup.cell)

    def evaluate(
        self,
        setup: Setup,
        learner: Learner,
        device: torch.device,
        *,
        use_cache: bool | None = None,
        progress: bool = False,
    ) -> EvalResult:
        return evaluate_sequences(
            learner, self.test_source(setup), setup.cell.episodes, setup.cell.shots, device, progress=progress
        )

    def figures(self, result: EvalResult) -> dict[str, float]:
        assert result.by_presentation is not None, "evaluate_sequences scores every presentation"
        means, halves = presentation_summary(result.by_presentation)
        figures = {f"presentation_{k + 1}": float(v) for k, v in enumerate(means)}
        figures.update({f"presentation_{k + 1}_ci95": float(v) for k, v in enumerate(halves)})
        return figures

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        from fewshot.leaderboard.papers import presentation_references

        cell = setup.cell
        assert result.by_presentation is not None, "evaluate_sequences scores every presentation"
        means, halves = presentation_summary(result.by_presentation)
        shown = [k for k in SANTORO_PRESENTATIONS if k <= cell.shots]
        lines = [
            f"{setup.name} on {cell.dataset}/{cell.protocol}, per-instance: {cell.ways} classes x {cell.shots} "
            f"instances, {cell.episodes} sequences, seed {cell.seed}",
            "presentation      " + "".join(f"{k:>14}" for k in shown),
            "accuracy %        " + "".join(f"{100 * means[k - 1]:>7.1f} ± {100 * halves[k - 1]:<4.1f}" for k in shown),
        ]
        for who, values in presentation_references(cell.dataset, cell.ways, cell.shots):
            lines.append(f"{who:<18}" + "".join(f"{values[k]:>14.1f}" for k in shown if k in values))
        lines.append(f"all steps: accuracy {100 * result.mean:.2f}% ± {100 * result.ci95:.2f} (95% interval)")
        return lines

    def leaderboard_section(self, runs: list[dict[str, Any]]) -> Section | None:
        import pandas as pd

        from fewshot.leaderboard.papers import presentation_references
        from fewshot.leaderboard.runs import label, latest

        table, cells = [], set()
        for run in latest(runs):
            figures = run.get("figures") or {}
            row = {
                "dataset": run["dataset"],
                "protocol": run["protocol"],
                "classes": run["ways"],
                "instances": run["shots"],
                "learner": label(run),
            }
            for k in SANTORO_PRESENTATIONS:
                if k <= run["shots"] and f"presentation_{k}" in figures:
                    row[_ordinal(k)] = (
                        f"{100 * figures[f'presentation_{k}']:.1f} ± {100 * figures[f'presentation_{k}_ci95']:.1f}"
                    )
            row.update({"sequences": run["episodes"], "training": run.get("train_budget") or "none", "run": run["id"]})
            table.append(row)
            cells.add((run["dataset"], run["protocol"], run["ways"], run["shots"]))
        if not table:
            return None
        for dataset, protocol, ways, instances in sorted(cells):
            for who, values in presentation_references(dataset, ways, instances):
                table.append(
                    {
                        "dataset": dataset,
                        "protocol": protocol,
                        "classes": ways,
                        "instances": instances,
                        "learner": who,
                        **{_ordinal(k): f"{v:.1f}" for k, v in values.items()},
                        "sequences": "",
                        "training": "",
                        "run": "",
                    }
                )
        return Section("Per-instance protocol (Santoro et al. 2016)", LEGEND, pd.DataFrame(table).fillna(""))


def _ordinal(k: int) -> str:
    return f"{k}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(k, 'th') }"
