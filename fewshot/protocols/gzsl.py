"""Generalized zero-shot learning (Xian et al. 2018): seen and unseen classes in one label space.

Every test image, of a seen class (held-out images of training classes) or an
unseen one, is labelled among all the test split's classes. The score is the
per-class mean accuracy on the seen classes' images (S), on the unseen
classes' (U), and their harmonic mean H = 2SU / (S + U), high only when both
are; H's interval comes from S's and U's (normal, over classes) by the delta
method. Two runs pair class by class (per-class accuracy, seen and unseen
classes together: a difference in H is not a mean over classes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Cell, Words
from fewshot.core.stats import harmonic_interval, harmonic_mean, mean_interval
from fewshot.protocols.all_classes import AllClasses, seen_classes

if TYPE_CHECKING:
    import torch

    from fewshot.core.data import Benchmark
    from fewshot.run.evaluation import EvalResult
    from fewshot.run.experiment import Setup

LEGEND = """`fewshot eval --protocol gzsl`: the label space holds seen and unseen classes; S and U are the per-class
mean accuracies on the seen and unseen classes' test images, H = 2SU / (S + U), its interval by the delta method
from S's and U's (± 1.96 standard errors over classes). Hyperparameters marked "chosen on val" were chosen on the
validation classes."""


class GeneralizedZeroShot(AllClasses):
    kind = "gzsl"
    summary = "seen and unseen test classes in one label space: S, U and their harmonic mean H"
    unit = "class"
    order = 25
    title = "Generalized zero-shot: seen and unseen classes at once"
    legend = LEGEND

    @classmethod
    def matches(cls, bench: Benchmark, words: Words) -> bool:
        return bench.evaluation == "gzsl"

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        if words.ways not in (None, "all"):
            raise FewshotError(
                f"{bench.dataset}/{bench.protocol} labels every test image among all its classes, "
                f"seen and unseen: pass --ways all or leave --ways out"
            )
        return replace(super().resolve(bench, replace(words, ways="all")), kind=self.kind)

    def seen(self, setup: Setup) -> torch.Tensor:
        return seen_classes(setup)

    def scored(self, result: EvalResult, seen: torch.Tensor) -> EvalResult:
        accuracy, flags = result.accuracies, seen.bool().numpy()
        if flags.all() or not flags.any():
            raise FewshotError("generalized zero-shot needs seen and unseen classes in the test split")
        s, u = float(accuracy[flags].mean()), float(accuracy[~flags].mean())
        s_half, u_half = mean_interval(accuracy[flags]), mean_interval(accuracy[~flags])
        h = harmonic_mean(s, u)
        return replace(
            result,
            scores={
                "seen": s,
                "unseen": u,
                "harmonic": h,
                "mean": h,
                "seen_ci95": s_half,
                "unseen_ci95": u_half,
                "ci95": harmonic_interval(s, s_half, u, u_half),
            },
        )

    def figures(self, result: EvalResult) -> dict[str, float]:
        return {k: v for k, v in (result.scores or {}).items() if k not in ("mean", "ci95")}

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        cell, scores = setup.cell, {k: 100 * v for k, v in (result.scores or {}).items()}
        return [
            f"{setup.name} on {cell.dataset}/{cell.protocol}: all {cell.ways} test classes at once, seen and "
            f"unseen, described by {cell.side}, seed {cell.seed}",
            f"seen S {scores['seen']:.2f}% ± {scores['seen_ci95']:.2f}, unseen U {scores['unseen']:.2f}% ± "
            f"{scores['unseen_ci95']:.2f}, harmonic mean H {scores['harmonic']:.2f}% ± {scores['ci95']:.2f} "
            f"(per-class mean accuracy, 95% intervals over classes)",
            *self.published(setup),
        ]

    def columns(self, run: dict[str, Any]) -> dict[str, str]:
        from fewshot.leaderboard.runs import percent

        f = run.get("figures") or {}
        if "seen" not in f:
            return {"S": "", "U": "", "H": percent(run["mean"], run["ci95"])}
        return {
            "S": percent(f["seen"], f["seen_ci95"]),
            "U": percent(f["unseen"], f["unseen_ci95"]),
            "H": percent(f["harmonic"], run["ci95"]),
        }

    def paper_text(self, paper: dict[str, float], who: str) -> str:
        return f"S {paper['seen']:g}, U {paper['unseen']:g}, H {paper['harmonic']:g} ({who})"
