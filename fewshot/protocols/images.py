"""Every test image classified among the training classes: unsupervised domain adaptation's protocol.

A benchmark scored this way (the digit shifts' ``uda`` and ``target-only``)
has a training split of labelled images and a test split of target images;
the learner's own classifier over its training classes (``Learner.classify``)
labels every test image. The score is the accuracy over all images with
Wilson's 95% interval; each image's outcome is recorded, in an order fixed by
the seed, so two runs pair image by image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Cell, Protocol, Section, Words, check_seed, require_unsaid
from fewshot.core.stats import wilson_interval

if TYPE_CHECKING:
    import torch

    from fewshot.core.data import Benchmark
    from fewshot.core.learner import Learner
    from fewshot.run.evaluation import EvalResult
    from fewshot.run.experiment import Setup

BATCH = 100  # test images per forward pass
ORDER_STREAM = 0x1A6E  # the seeded order of the test images (the same as when batches of 100 were recorded)

LEGEND = """Trained on labelled source images and unlabelled target training images, scored on every target test
image. One row per shift, protocol and method: the mean over the seeds shown, ± the 95% interval of that mean over
seeds (Student's t), then each seed's accuracy. A single seed shows its own Wilson interval over images. The
`target-only` protocol is the ceiling: the same network trained on the labelled target training images. A seed's
figure depends on the device that trained it (and, on a CPU, on the number of threads), so the device is shown."""


class Images(Protocol):
    kind = "images"
    summary = "every target test image classified among the training classes (domain adaptation)"
    unit = "image"
    order = 30
    scores_training_classes = True

    @classmethod
    def matches(cls, bench: Benchmark, words: Words) -> bool:
        return bench.evaluation == "images"

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        classes = len(bench.required_split("train"))
        require_unsaid(
            bench,
            words,
            f"classifies every {bench.target} test image among all {classes} classes",
            "ways",
            "shots",
            "queries",
            "episodes",
        )
        check_seed(words.seed)
        from fewshot.core.sampler import ImagePool

        images = len(ImagePool(bench.data, bench.required_split("test")).items()[0])
        return Cell(
            bench.dataset,
            bench.protocol,
            classes,
            0,
            0,
            images,
            words.seed,
            kind=self.kind,
            source=bench.source,
            target=bench.target,
        )

    def check(self, name: str, learner: type[Learner], cell: Cell) -> None:
        if not learner.classifies():
            raise FewshotError(
                f"{name} has no classifier over the training classes, which "
                f"{cell.dataset}/{cell.protocol} scores target images with: choose a learner "
                f"that implements classify (see `fewshot learners`)"
            )

    def validator(self, setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
        """Accuracy on the validation images during training, where the benchmark has them (a selection view's
        held-out images, ``--select training-domain`` or ``oracle``): the learning curve its checkpoint keeps."""
        split = setup.bench.split("val")
        if split is None:
            return None
        import torch

        from fewshot.core.sampler import ImagePool
        from fewshot.run.evaluation import predicted_classes

        items, rows = ImagePool(setup.bench.data, split).items()

        def accuracy() -> float:
            learner.eval()
            with torch.no_grad():
                predicted = predicted_classes(learner.classify, setup.bench.data, items, BATCH, device)
            return float((predicted == rows).mean())

        return accuracy

    def wants_sides(self, cell: Cell) -> bool:
        return False  # no support set, but the classes are the training classes, known by their labels

    def evaluate(
        self,
        setup: Setup,
        learner: Learner,
        device: torch.device,
        *,
        use_cache: bool | None = None,
        progress: bool = False,
    ) -> EvalResult:
        import time

        from fewshot.core.sampler import EpisodePlan, ImagePool
        from fewshot.run.evaluation import EvalResult, episodes_digest, predicted_classes

        was_training = learner.training
        learner.eval()
        start = time.perf_counter()
        items, rows = ImagePool(setup.bench.data, setup.bench.required_split(setup.cell.split)).items()
        order = np.random.default_rng([setup.cell.seed, ORDER_STREAM]).permutation(len(items))
        items, rows = items[order], rows[order]
        try:
            correct = predicted_classes(learner.classify, setup.bench.data, items, BATCH, device) == rows
        finally:
            learner.train(was_training)
        if len(correct) != setup.cell.episodes:
            raise RuntimeError(f"expected {setup.cell.episodes} test images, scored {len(correct)}")
        low, high = wilson_interval(int(correct.sum()), len(correct))
        plan = EpisodePlan(np.unique(rows), np.empty(0, dtype=np.int64), items, setup.cell.seed)
        return EvalResult(
            correct.astype(np.float64),
            time.perf_counter() - start,
            episodes_digest([plan]),
            False,
            scores={"mean": float(correct.mean()), "ci95": (high - low) / 2, "wilson_low": low, "wilson_high": high},
        )

    def figures(self, result: EvalResult) -> dict[str, float]:
        return {k: v for k, v in (result.scores or {}).items() if k.startswith("wilson")}

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        from fewshot.leaderboard.papers import adaptation_references

        cell, scores = setup.cell, result.scores or {}
        scored = f"{cell.episodes} {cell.target} test images"
        if setup.bench.selection:  # validation images, which no paper reports
            scored = f"{cell.episodes} validation images (--select {setup.bench.selection})"
        references = (
            [] if setup.bench.selection else adaptation_references(cell.protocol, cell.source, cell.target, setup.adapt)
        )
        return [
            f"{setup.name} --adapt {setup.adapt} on {cell.dataset}/{cell.protocol}: {cell.source} -> "
            f"{cell.target}, {scored}, seed {cell.seed}",
            f"accuracy {100 * result.mean:.2f}% (95% Wilson interval {100 * scores['wilson_low']:.2f} to "
            f"{100 * scores['wilson_high']:.2f})",
            *(f"published ({who}): {figure}" for who, figure in references),
        ]

    def compare(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        if a.get("unit") != b.get("unit"):
            raise FewshotError(
                f"runs {a['id']} and {b['id']} recorded different units ({a.get('unit')} and "
                f"{b.get('unit')}): an older run kept batch accuracies, not each image's outcome; "
                f"rerun it to compare image by image"
            )
        return super().compare(a, b)

    def leaderboard_section(self, runs: list[dict[str, Any]]) -> Section | None:
        import pandas as pd

        from fewshot.core.stats import seed_interval
        from fewshot.leaderboard.papers import adaptation_references
        from fewshot.leaderboard.runs import chosen_on, label, latest

        groups: dict[tuple, list[dict[str, Any]]] = {}
        for run in latest(runs):
            key = (
                run["dataset"],
                run["source"],
                run["target"],
                run["protocol"],
                label(run),
                run.get("adaptation") or "none",
                run.get("train_budget"),
            )
            groups.setdefault(key, []).append(run)
        table = []
        for (dataset, source, target, protocol, shown, method, budget), group in groups.items():
            group = sorted(group, key=lambda r: r["seed"])
            values = np.array([100 * r["mean"] for r in group])
            if len(values) > 1:
                accuracy = f"{values.mean():.2f} ± {seed_interval(values):.2f}"
            else:
                accuracy = f"{values[0]:.2f} ± {100 * group[0]['ci95']:.2f}"
            # the papers' settings only: an entry with a changed hyperparameter is not their cell
            references = [] if "(" in shown else adaptation_references(protocol, source, target, method)
            table.append(
                {
                    "dataset": dataset,
                    "shift": f"{source} → {target}",
                    "protocol": protocol,
                    "method": method,
                    "learner": shown,
                    "accuracy % (mean over seeds ± 95%)": accuracy,
                    "seeds": ", ".join(f"{v:.2f}" for v in values),
                    "published": "; ".join(
                        f"{figure.removeprefix('accuracy ').rstrip('%')} ({who})" for who, figure in references
                    ),
                    "training": budget or "none",
                    "defaults chosen on": ", ".join(sorted({chosen_on(r) for r in group} - {""})) or "none recorded",
                    "device": ", ".join(sorted({r.get("device") or "?" for r in group})),
                    "runs": ", ".join(str(r["id"]) for r in group),
                    "_sort": (source, target, protocol, method != "none", -values.mean()),
                }
            )
        if not table:
            return None
        table.sort(key=lambda row: row.pop("_sort"))
        return Section("Unsupervised domain adaptation: every target test image", LEGEND, pd.DataFrame(table))
