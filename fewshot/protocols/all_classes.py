"""Zero-shot learning over every test class at once (Xian, Lampert, Schiele and Akata 2018, "Zero-Shot
Learning: A Comprehensive Evaluation of the Good, the Bad and the Ugly", TPAMI).

``--ways all --shots 0``: every image of the test split is labelled among all
of the split's classes, known by their descriptions alone. Accuracy is averaged
per class, then over classes (per-class mean top-1), so that classes with many
test images do not dominate; the interval is the normal one over classes, and
two runs pair class by class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Cell, Protocol, Section, Words, check_seed
from fewshot.core.stats import mean_interval
from fewshot.protocols.episodic import VALIDATION_EPISODES, validation_episodes, wants_all_classes

if TYPE_CHECKING:
    from fewshot.core.data import Benchmark
    from fewshot.core.learner import Learner
    from fewshot.run.evaluation import EvalResult
    from fewshot.run.experiment import Setup

LEGEND = """`fewshot eval --ways all --shots 0`: every test image is labelled among all the test split's classes, known
by their descriptions (the side column) alone: per-class mean accuracy, ± 1.96 standard errors over classes.
Hyperparameters marked "chosen on val" were chosen on the validation classes."""


def per_class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Accuracy on each of ``classes`` (``[len(classes)]``), from predicted and true labels of test images."""
    correct = (predicted == labels).float()
    accuracy = torch.empty(len(classes))
    for i, c in enumerate(classes.tolist()):
        mine = labels == c
        if not bool(mine.any()):
            raise ValueError(f"class {c} has no test images")
        accuracy[i] = correct[mine].mean()
    return accuracy


class AllClasses(Protocol):
    kind = "all-classes"
    summary = "every test image among all the test split's classes, known by their descriptions (zero-shot)"
    unit = "class"
    order = 20
    title = "Zero-shot, every test class at once"
    legend = LEGEND

    @classmethod
    def matches(cls, bench: Benchmark, words: Words) -> bool:
        return not bench.evaluation and wants_all_classes(bench, words)

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        if words.shots not in (None, 0):
            raise FewshotError(
                "--ways all scores every test image against every class by its description: pass --shots 0"
            )
        for name in ("queries", "episodes"):
            if getattr(words, name) is not None:
                raise FewshotError(f"--ways all scores every test image once; leave out --{name}")
        split = bench.split("test")
        if split is None or bench.fixed:
            raise FewshotError(f"{bench.dataset}/{bench.protocol} has no test split of classes to score all at once")
        check_seed(words.seed)
        return Cell(bench.dataset, bench.protocol, len(split), 0, 0, 1, words.seed, kind=self.kind)

    def training_words(self, bench: Benchmark, words: Words) -> Words:
        from dataclasses import replace

        return replace(words, ways="all", shots=0 if words.shots is None else words.shots)

    def check(self, name: str, learner: type[Learner], cell: Cell) -> None:
        if learner.needs_support:
            raise FewshotError(
                f"{name} needs support images and cannot run with --shots 0; "
                f"choose a zero-shot learner (see `fewshot learners`)"
            )

    def validator(self, setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
        """5-way episodes of the val classes (the all-classes score of val is what ``prepare`` selects by)."""
        sampler = validation_episodes(setup, learner, 5)
        if sampler is None:
            return None
        from fewshot.run.evaluation import evaluate

        return lambda: evaluate(learner, sampler, VALIDATION_EPISODES, device).mean

    def seen(self, setup: Setup) -> torch.Tensor:
        """One flag per class row of the test split: whether it is a training class (none, in zero-shot)."""
        return torch.zeros(len(setup.bench.required_split(setup.cell.split)), dtype=torch.bool)

    def evaluate(
        self,
        setup: Setup,
        learner: Learner,
        device: torch.device,
        *,
        use_cache: bool | None = None,
        progress: bool = False,
    ) -> EvalResult:
        from fewshot.run.evaluation import evaluate_all_classes

        if setup.side is None:
            raise FewshotError(
                f"{setup.cell.dataset}/{setup.cell.protocol}: every class is scored by its description, and this "
                f"run has none: choose a zero-shot learner"
            )
        result = evaluate_all_classes(
            learner, setup.bench.data, setup.bench.required_split(setup.cell.split), setup.side, device
        )
        return self.scored(result, self.seen(setup))

    def scored(self, result: EvalResult, seen: torch.Tensor) -> EvalResult:
        """The result's score from its per-class accuracies: their mean and interval over classes."""
        from dataclasses import replace

        return replace(
            result, scores={"mean": float(result.accuracies.mean()), "ci95": mean_interval(result.accuracies)}
        )

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        cell = setup.cell
        return [
            f"{setup.name} on {cell.dataset}/{cell.protocol}: all {cell.ways} test classes at once, described by "
            f"{cell.side}, seed {cell.seed}",
            f"per-class mean accuracy {100 * result.mean:.2f}% ± {100 * result.ci95:.2f} (95% interval over classes)",
            *self.published(setup),
        ]

    def published(self, setup: Setup) -> list[str]:
        from fewshot.leaderboard.papers import zero_shot_references

        return [
            f"published ({who}): {figure}"
            for who, figure in zero_shot_references(setup.cell.dataset, setup.cell.protocol, setup.name)
        ]

    def leaderboard_section(self, runs: list[dict[str, Any]]) -> Section | None:
        import pandas as pd

        from fewshot.leaderboard.papers import XIAN_2018, zero_shot_paper
        from fewshot.leaderboard.runs import label, latest

        table = []
        for run in latest(runs):
            paper = zero_shot_paper(run["learner"], run["dataset"], run["protocol"])
            row = {
                "dataset": run["dataset"],
                "protocol": run["protocol"],
                "side": run["side"],
                "classes": run["ways"],
                "learner": label(run),
                **self.columns(run),
                "published": self.paper_text(paper, XIAN_2018) if paper else "",
                "training": run.get("train_budget") or "none",
                "run": run["id"],
            }
            table.append((run["dataset"], run["protocol"], run["side"], -run["mean"], row))
        if not table:
            return None
        table.sort(key=lambda entry: entry[:4])
        return Section(self.title, self.legend, pd.DataFrame([row for *_, row in table]))

    def columns(self, run: dict[str, Any]) -> dict[str, str]:
        from fewshot.leaderboard.runs import percent

        return {"per-class accuracy %": percent(run["mean"], run["ci95"])}

    def paper_text(self, paper: dict[str, float], who: str) -> str:
        return f"{paper['mean']:g} ({who})"


def seen_classes(setup: Setup) -> torch.Tensor:
    """Which class rows of the test split are training classes."""
    split, train = setup.bench.required_split(setup.cell.split), setup.bench.split("train")
    trained = train.classes.numpy() if train is not None else np.empty(0, dtype=np.int64)
    return torch.from_numpy(np.isin(split.classes.numpy(), trained))
