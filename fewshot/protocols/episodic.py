"""N-way K-shot episodes: the standard few-shot protocol (Vinyals et al. 2016).

Episode ``i`` of a cell is a pure function of (dataset, protocol, split, ways,
shots, queries, seed, i), or one of the fixed episodes a benchmark's authors
published (Lake's twenty runs). The score of a run is the mean query accuracy
over its episodes with the normal 95% interval over episodes; two runs of one
cell pair episode by episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fewshot.core.errors import FewshotError
from fewshot.core.protocol import (
    DEFAULT_EPISODES,
    DEFAULT_QUERIES,
    MAX_EPISODES,
    Cell,
    Protocol,
    Section,
    Words,
    check_seed,
)

if TYPE_CHECKING:
    import torch

    from fewshot.core.data import Benchmark
    from fewshot.core.learner import Learner
    from fewshot.core.sampler import EpisodeSource
    from fewshot.run.evaluation import EvalResult
    from fewshot.run.experiment import Setup

VALIDATION_EPISODES = 100

LEGEND = """Accuracy is the mean over episodes in percent, ± 1.96 standard errors; "published" is the paper's
figure for the same protocol. A row is a learner (with the hyperparameters that differ from its defaults, and
its training budget) on a benchmark cell: dataset, protocol, ways, shots, 15 queries per class unless the
protocol fixes them, the episodes shown, seed 0."""


def wants_all_classes(bench: Benchmark, words: Words) -> bool:
    """``--ways all``, or a zero-shot protocol with --ways left out: every test class at once."""
    return words.ways == "all" or (words.ways is None and bench.zero_shot)


class Episodic(Protocol):
    kind = "episodic"
    summary = "N-way K-shot episodes with Q queries per class; mean accuracy over episodes"
    unit = "episode"
    order = 10

    @classmethod
    def matches(cls, bench: Benchmark, words: Words) -> bool:
        return not bench.evaluation and not wants_all_classes(bench, words)

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        shots = words.shots
        if bench.zero_shot:
            if shots not in (None, 0):
                raise FewshotError(
                    f"{bench.dataset}/{bench.protocol} knows its test classes by their descriptions "
                    f"alone: pass --shots 0 or leave --shots out"
                )
            shots = 0
        given: dict[str, Any] = {
            "ways": words.ways,
            "shots": shots,
            "queries": words.queries,
            "episodes": words.episodes,
        }
        for name, fixed in bench.fixed_cell.items():
            if given[name] is not None and given[name] != fixed:
                pinned = " ".join(f"--{k} {v}" for k, v in bench.fixed_cell.items())
                raise FewshotError(
                    f"{bench.dataset}/{bench.protocol} fixes --{name} {fixed} (its episodes are "
                    f"{pinned}); leave --{name} out or pass {fixed}"
                )
            given[name] = fixed
        given["queries"] = bench.default_queries if given["queries"] is None else given["queries"]
        given["episodes"] = DEFAULT_EPISODES if given["episodes"] is None else given["episodes"]
        for name in ("ways", "shots"):
            if given[name] is None:
                raise FewshotError(f"--{name} is required (for example --ways 5 --shots 1)")
        for name, value in given.items():
            least = 0 if name == "shots" else 1
            if value < least:
                raise FewshotError(f"--{name} must be at least {least}, got {value}")
        if given["episodes"] > MAX_EPISODES:
            raise FewshotError(f"--episodes must be at most {MAX_EPISODES:,}, got {given['episodes']:,}")
        check_seed(words.seed)
        return Cell(
            bench.dataset,
            bench.protocol,
            seed=words.seed,
            source=bench.source,
            target=bench.target,
            kind=self.kind,
            **given,
        )

    def training_words(self, bench: Benchmark, words: Words) -> Words:
        """Validation during training uses 5-way 1-shot episodes unless told otherwise (or the fixed cell)."""
        from dataclasses import replace

        fixed = bench.fixed_cell
        return replace(
            words,
            ways=fixed.get("ways", 5 if words.ways is None else words.ways),
            shots=fixed.get("shots", (0 if bench.zero_shot else 1) if words.shots is None else words.shots),
            episodes=fixed.get("episodes", words.episodes),
        )

    def check(self, name: str, learner: type[Learner], cell: Cell) -> None:
        if cell.shots == 0 and learner.needs_support:
            raise FewshotError(
                f"{name} needs support images and cannot run with --shots 0; "
                f"choose a zero-shot learner (see `fewshot learners`)"
            )

    def validator(self, setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
        sampler = validation_episodes(setup, learner, setup.cell.ways)
        if sampler is None:
            return None
        from fewshot.run.evaluation import evaluate

        return lambda: evaluate(learner, sampler, VALIDATION_EPISODES, device).mean

    def test_source(self, setup: Setup) -> EpisodeSource:
        from fewshot.run.experiment import test_source

        return test_source(setup.bench, setup.cell, setup.side)

    def evaluate(
        self,
        setup: Setup,
        learner: Learner,
        device: torch.device,
        *,
        use_cache: bool | None = None,
        progress: bool = False,
    ) -> EvalResult:
        from fewshot.run.evaluation import evaluate

        return evaluate(
            learner,
            self.test_source(setup),
            setup.cell.episodes,
            device,
            use_cache=use_cache,
            persist=True,
            progress=progress,
        )

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        cell = setup.cell
        described = f", classes described by {cell.side}" if cell.side else ""
        lines = [
            f"{setup.name} on {cell.dataset}/{cell.protocol}: {cell.ways}-way {cell.shots}-shot, "
            f"{cell.queries} queries, {cell.episodes} episodes, seed {cell.seed}{described}"
        ]
        mean, half = 100 * result.mean, 100 * result.ci95
        if setup.bench.report == "error":
            from fewshot.leaderboard.papers import references_for

            refs = ", ".join(f"{who} {err:g}%" for who, err in references_for(cell.dataset, cell.protocol))
            lines.append(f"error rate {100 - mean:.2f}% ± {half:.2f} (accuracy {mean:.2f}%); published: {refs}")
        else:
            lines.append(f"accuracy {mean:.2f}% ± {half:.2f} (95% interval)")
        return lines

    def leaderboard_section(self, runs: list[dict[str, Any]]) -> Section | None:
        import pandas as pd

        from fewshot.leaderboard.papers import references_for, run_paper_accuracy
        from fewshot.leaderboard.runs import label, latest, protocol_shown, shift

        table, points = [], []
        for run in latest(runs):
            mean, half = 100 * run["mean"], 100 * run["ci95"]
            shifted = bool(shift(run))  # a domain shift is not the paper's cell
            paper = None if shifted else run_paper_accuracy(run)  # the figure for the run's backbone
            refs = [] if shifted else references_for(run["dataset"], run["protocol"])
            published = f"{paper[0]:g} ({paper[1]})" if paper else "; ".join(f"{w} {e:g}% error" for w, e in refs)
            table.append(
                {
                    "dataset": run["dataset"],
                    "protocol": protocol_shown(run),
                    "ways": run["ways"],
                    "shots": run["shots"],
                    "learner": label(run),
                    "accuracy % (± 95% interval)": f"{100 - mean:.2f} ± {half:.2f} error"
                    if run["report"] == "error"
                    else f"{mean:.2f} ± {half:.2f}",
                    "published": published,
                    "episodes": run["episodes"],
                    "training": run.get("train_budget") or "none",
                    "run": run["id"],
                    "_sort": (run["dataset"], run["protocol"], run["ways"], run["shots"], -mean),
                }
            )
            points.append(
                {
                    "chart": f"{run['dataset']}/{run['protocol']} {run['ways']}-way {run['shots']}-shot",
                    "label": label(run),
                    "mean": mean,
                    "ci95": half,
                    "_sort": table[-1]["_sort"],
                }
            )
        if not table:
            return None
        table.sort(key=lambda row: row.pop("_sort"))
        points.sort(key=lambda point: point.pop("_sort"))
        return Section("Few-shot episodes", LEGEND, pd.DataFrame(table), pd.DataFrame(points))


def validation_episodes(setup: Setup, learner: Learner, ways: int) -> EpisodeSource | None:
    """Episodes of the val split for validation during training (none for learners fitted after training)."""
    from fewshot.core.sampler import EpisodeSampler

    split = setup.bench.split("val")
    if split is None or learner.prepares():
        return None
    cell = setup.cell
    return EpisodeSampler(
        setup.bench.data,
        split,
        min(ways, len(split)),
        cell.shots,
        cell.queries or DEFAULT_QUERIES,
        cell.seed,
        role="val",
        name=f"the {cell.dataset}/{cell.protocol} val split",
        side=setup.side,
    )
