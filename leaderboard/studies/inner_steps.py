"""Query accuracy against inner step: the learned optimisers beside SGD and Adam.

For each learned optimiser (``metalstm``, ``lstmopt``), trained on the cell at
its default budget (or the one given), the classifier starts where the learner
starts it (metalstm's learned initialisation, lstmopt's fixed random draw) and
is trained on every test episode's support set three ways: by the learned rule,
by SGD and by Adam. Each hand-written rule gets the learning rate of a grid that
scored best after the last step on validation episodes. Query accuracy is
recorded after every step, on the same episodes for every rule.

Writes a PNG (one panel per learner) and prints one JSON line, last::

    python -m fewshot.leaderboard.studies.inner_steps --dataset omniglot --ways 5 --shots 1 \\
        --out leaderboard/inner_steps.png
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import torch

from fewshot.baselines.learned_optimizer import LearnedOptimizerLearner, UpdateRule, hand_written_rule
from fewshot.core.sampler import EpisodeSampler, EpisodeSource
from fewshot.core.stats import mean_interval
from fewshot.run import experiment

LEARNERS = ("metalstm", "lstmopt")
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 1.0)
RULE_LABELS = {"sgd": "SGD", "adam": "Adam"}


def accuracy_by_step(
    learner: LearnedOptimizerLearner, source: EpisodeSource, episodes: int, rule: UpdateRule, steps: int
) -> np.ndarray:
    """[episodes, steps + 1]: query accuracy before and after each update of the rule."""
    learner.eval()
    accuracy = np.empty((episodes, steps + 1))
    with torch.no_grad():
        for i in range(episodes):
            episode = source[i]
            for t, theta in enumerate(learner.trajectory(episode, steps, rule)):
                predicted = learner.logits(theta, episode.query_x).argmax(1)
                accuracy[i, t] = (predicted == episode.query_y).float().mean().item()
    return accuracy


def best_learning_rate(learner, source, episodes: int, rule_name: str, steps: int) -> float:
    scores = {
        lr: accuracy_by_step(learner, source, episodes, hand_written_rule(rule_name, lr), steps)[:, -1].mean()
        for lr in LEARNING_RATES
    }
    return max(scores, key=lambda lr: scores[lr])


@click.command()
@click.option("--dataset", default="omniglot", show_default=True)
@click.option("--protocol", default=None)
@click.option("--ways", type=int, default=5, show_default=True)
@click.option("--shots", type=int, default=1, show_default=True)
@click.option("--episodes", type=int, default=200, show_default=True, help="Test episodes.")
@click.option("--val-episodes", type=int, default=50, show_default=True, help="Episodes choosing the learning rates.")
@click.option("--budget", default=None, help="Training budget of both learners (default: each one's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="leaderboard/inner_steps.png", show_default=True)
def main(dataset, protocol, ways, shots, episodes, val_episodes, budget, seed, out):
    bench = experiment.open_benchmark(dataset, protocol)
    cell = experiment.resolve_cell(bench, ways, shots, None, episodes, seed)
    test = experiment.test_source(bench, cell)
    val = EpisodeSampler(
        bench.data,
        bench.required_split("val"),
        ways,
        shots,
        cell.queries,
        seed,
        role="val",
        name=f"the {dataset} val split",
    )
    figures: dict[str, dict] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name in LEARNERS:
        setup = experiment.make_setup(name, {}, bench, cell)
        learner = experiment.ensure_trained(
            setup, experiment.default_budget(setup, budget), torch.device("cpu"), progress=False
        ).learner
        assert isinstance(learner, LearnedOptimizerLearner), f"{name} learns its optimiser (LEARNERS)"
        steps = learner.hp["inner_steps"]
        rules: dict[str, tuple[UpdateRule, float | None]] = {"learned": (learner.learned_rule(), None)}
        for rule_name in ("sgd", "adam"):
            lr = best_learning_rate(learner, val, val_episodes, rule_name, steps)
            rules[rule_name] = (hand_written_rule(rule_name, lr), lr)
        curves[name], figures[name] = {}, {}
        for rule_name, (rule, rule_lr) in rules.items():
            accuracy = accuracy_by_step(learner, test, episodes, rule, steps)
            curves[name][rule_name] = accuracy
            final = accuracy[:, -1]
            figures[name][rule_name] = {
                "lr": rule_lr,
                "accuracy": round(100 * final.mean(), 2),
                "ci95": round(100 * mean_interval(final), 2),
            }
        for rule_name in ("sgd", "adam"):
            difference = curves[name]["learned"][:, -1] - curves[name][rule_name][:, -1]
            figures[name][f"learned_minus_{rule_name}"] = {
                "mean": round(100 * difference.mean(), 2),
                "ci95": round(100 * mean_interval(difference), 2),
            }
    _plot(curves, figures, cell, episodes, Path(out))
    print(
        json.dumps(
            {"cell": f"{dataset}/{bench.protocol} {ways}-way {shots}-shot", "episodes": episodes, "png": out, **figures}
        )
    )


def _plot(curves, figures, cell, episodes: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), sharey=True)
    for ax, (name, by_rule) in zip(np.atleast_1d(axes), curves.items()):
        for rule_name, accuracy in by_rule.items():
            mean, half = 100 * accuracy.mean(0), 100 * np.array([mean_interval(column) for column in accuracy.T])
            lr = figures[name][rule_name]["lr"]
            label = f"{name} (learned)" if lr is None else f"{RULE_LABELS[rule_name]}, lr {lr:g}"
            steps = np.arange(len(mean))
            ax.plot(steps, mean, marker="o", markersize=3, label=label)
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
        ax.set_title(f"{name}: {cell.dataset} {cell.ways}-way {cell.shots}-shot")
        ax.set_xlabel("inner step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel(f"query accuracy % ({episodes} episodes, 95% interval)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
