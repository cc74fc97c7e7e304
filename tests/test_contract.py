"""Every registered learner, built-in or plug-in, through the same real episodes.

The parametrisation is the learner registry, so a learner is tested the moment it registers. Each learner
is trained briefly on glyphs (the offline 28x28 benchmark, built in seconds): few-shot learners on 5-way
1-shot episodes of the ``scripts`` protocol, zero-shot learners (those that read class descriptions) on
5-way zero-shot episodes of ``zsl``. Then its predictions must

* be finite logits of exactly ``[ways * queries, ways]``, the same on a second call;
* leave the learner as they found it: weights and buffers, train/eval flags, optimiser state, gradients,
  hyperparameters;
* beat its untrained twin (same class, hyperparameters and seed, built and, if it fits heads on the
  training split, prepared the same way but never trained) on the same test episodes, by a margin of
  several standard errors of the paired per-episode difference;
* beat chance clearly: mean accuracy, less Z standard errors, above 1 / ways + ``ABOVE_CHANCE``.

A learner that declares no training batches (a plug-in nearest neighbour, say) has no twin to beat; the
other checks still apply. What each learner's short training is: ``BUDGETS`` below.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from fewshot.core import registry
from fewshot.core.data import Benchmark, Split
from fewshot.core.episode import Episode
from fewshot.core.learner import Learner
from fewshot.run import experiment
from fewshot.run.evaluation import EvalResult, evaluate
from fewshot.run.training import Budget, train

WAYS, QUERIES, EPISODES, SEED = 5, 5, 100, 0
DEVICE = torch.device("cpu")
# A difference counts when its mean, less Z standard errors of that mean, is above zero: were training no
# help at all, a paired z of 3 or more would come about once in 700 runs (one-sided normal tail).
Z = 3.0
# Clearly above chance: the trained learner's mean accuracy, less Z standard errors, above 1 / WAYS + this.
ABOVE_CHANCE = 0.05

# Training steps and --hp overrides per learner: about the cheapest training that passed both comparisons
# with room to spare under seeds 0, 1 and 2 (the seed moves the initial weights, the training batches and the
# test episodes), measured on 2 CPU threads. Overrides make a step cheaper (fewer ways or queries per training
# episode, smaller meta-batches, fewer inner steps, shorter head fits, fewer filters: the zero-shot heads'
# ``prepare`` embeds every seen image twice here, for learner and twin) or, for fomaml and lstmopt, raise the
# meta learning rate so they leave chance sooner. mann needs the most: Santoro et al.'s memory sits at chance
# for about a thousand 5-way steps before it learns to bind labels.
BUDGETS: dict[str, tuple[int, dict[str, str]]] = {
    "protonet": (10, {"train_ways": "20"}),
    "matchingnet": (15, {}),
    "finetune": (200, {"ft_epochs": "30"}),
    "maml": (40, {"meta_batch": "4", "train_queries": "5"}),
    "fomaml": (60, {"meta_batch": "4", "train_queries": "5", "meta_lr": "0.003"}),
    "anil": (10, {"meta_batch": "4", "train_queries": "5"}),
    "metasgd": (10, {"meta_batch": "4", "train_queries": "5"}),
    "reptile": (150, {"meta_batch": "2", "test_steps": "5"}),
    "metanet": (100, {}),
    "mann": (1200, {"meta_batch": "8"}),
    "metalstm": (120, {"inner_steps": "5", "hidden": "8"}),
    "lstmopt": (200, {"inner_steps": "5", "hidden": "8", "meta_lr": "0.003"}),
    "eszsl": (150, {"hidden": "16"}),
    "dap": (150, {"hidden": "16", "head_steps": "300"}),
    "devise": (150, {"hidden": "16", "head_steps": "300"}),
    "conse": (400, {"hidden": "16", "head_steps": "300"}),
}
# The zero-shot learners train their embedding on the seen classes, and ``prepare`` embeds every image of them:
# glyphs' zsl protocol has 2,010 seen classes (40,200 images). 300 of them, spread evenly, cost about a
# seventh as much and still train, within 150 steps, an embedding that beats a random one.
ZERO_SHOT_SEEN = 300
# A learner this module does not know (a plug-in): a generous budget, its own hyperparameters.
DEFAULT_BUDGET: tuple[int, dict[str, str]] = (100, {})


def lower_bound(values: np.ndarray) -> float:
    """Mean less Z standard errors of the mean."""
    return float(values.mean() - Z * values.std(ddof=1) / math.sqrt(len(values)))


@dataclass
class Case:
    name: str
    learner: Learner  # trained, prepared, in eval mode
    twin: Learner  # built and prepared alike, never trained
    trains: bool  # whether the learner declares training batches at all
    episode: Episode  # the first test episode
    trained: EvalResult  # on the same EPISODES test episodes
    untrained: EvalResult


def build_case(name: str, bench: Benchmark, seed: int = SEED) -> Case:
    cls = registry.learner(name)
    zero_shot = bool(cls.reads_sides)
    cell = experiment.resolve_cell(bench, WAYS, 0 if zero_shot else 1, QUERIES, EPISODES, seed)
    steps, tiny = BUDGETS.get(name, DEFAULT_BUDGET)
    # the grid's hyperparameters stay at their defaults: choosing them on val is tested elsewhere
    overrides = {**{k: str(cls.hparams[k]) for k in cls.hparam_grid}, **tiny}
    setup = experiment.make_setup(name, overrides, bench, cell)
    learner = experiment.build(setup, DEVICE)
    twin = experiment.build(setup, DEVICE)
    batch_at = experiment.batches_for(setup, learner)
    if batch_at is not None:
        # The harness's training loop itself; validation and checkpoints are left out (tested in test_harness).
        train(learner, batch_at, Budget(steps=steps), save_checkpoint=lambda state, complete: None, progress=False)
    for each in (learner, twin):
        experiment.prepare(setup, each, DEVICE)  # nothing for learners that fit nothing on the split
        each.eval()
    source = experiment.test_source(bench, setup.cell, setup.side)
    return Case(
        name,
        learner,
        twin,
        batch_at is not None,
        source[0],
        evaluate(learner, source, EPISODES),
        evaluate(twin, source, EPISODES),
    )


def fewer_seen_classes(bench: Benchmark, count: int = ZERO_SHOT_SEEN) -> Benchmark:
    """``bench`` with its training split thinned to ``count`` classes spread evenly over it; the other splits,
    the images and the descriptions are the protocol's."""
    train = bench.required_split("train")
    keep = torch.linspace(0, len(train) - 1, count).round().long()
    return dataclasses.replace(bench, splits={**bench.splits, "train": Split.of(train.classes[keep])})


@pytest.fixture(scope="module")
def zero_shot_bench(glyphs_zsl) -> Benchmark:
    return fewer_seen_classes(glyphs_zsl)


@pytest.fixture(scope="module", params=registry.names("learner"))
def case(request, glyphs, zero_shot_bench) -> Case:
    """A learner briefly trained, with its untrained twin; built once for all the tests of that learner."""
    cls = registry.learner(request.param)
    return build_case(request.param, zero_shot_bench if cls.reads_sides else glyphs)


def snapshot(learner: Learner) -> dict[str, Any]:
    """Everything ``predict`` must leave as it is."""
    return copy.deepcopy(
        {
            "training_state": learner.training_state(),  # weights, buffers, every optimiser's and scheduler's state
            "modes": [module.training for module in learner.modules()],
            "grads": {name: p.grad for name, p in learner.named_parameters()},
            # hyperparameters, and what ``prepare`` fits outside the state dict (a zero-shot head, its standardisation)
            "attributes": {
                name: value
                for name, value in vars(learner).items()
                if not name.startswith("_") and isinstance(value, (torch.Tensor, tuple, list, dict))
            },
        }
    )


def assert_same(before: Any, after: Any, where: str = "") -> None:
    if isinstance(before, torch.Tensor):
        assert isinstance(after, torch.Tensor) and torch.equal(before, after), f"predict changed {where}"
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), f"predict changed the keys of {where or 'the state'}"
        for key in before:
            assert_same(before[key], after[key], f"{where}.{key}" if where else str(key))
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after), f"predict changed {where}"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
    else:
        assert before == after, f"predict changed {where}: {before!r} -> {after!r}"


def test_predict_gives_finite_logits_of_one_row_per_query_and_one_column_per_way(case):
    """The layout every scorer relies on: ``[ways * queries, ways]``, queries in the episode's order."""
    logits = case.learner.predict(case.episode)
    assert logits.shape == (WAYS * QUERIES, WAYS)
    assert torch.isfinite(logits).all()


def test_predict_is_deterministic(case):
    """The same episode scores the same twice: a result depends on the episode, not on what ran before."""
    assert torch.equal(case.learner.predict(case.episode), case.learner.predict(case.episode))


def test_predict_leaves_the_learner_as_it_found_it(case):
    """Whatever predict builds from a support set is a local value: nothing of the learner changes."""
    before = snapshot(case.learner)
    case.learner.predict(case.episode)
    assert_same(before, snapshot(case.learner))


def test_training_beats_the_untrained_twin_on_the_same_episodes(case):
    """Paired per-episode accuracies: the mean difference, less Z standard errors, is above zero."""
    if not case.trains:
        pytest.skip(f"{case.name} declares no training batches: there is nothing to compare")
    assert case.trained.digest == case.untrained.digest, "both were scored on the same episodes"
    difference = case.trained.accuracies - case.untrained.accuracies
    assert lower_bound(difference) > 0, (
        f"{case.name}: trained {case.trained.mean:.3f}, untrained {case.untrained.mean:.3f}, "
        f"difference {difference.mean():.3f} +- {difference.std(ddof=1) / math.sqrt(len(difference)):.3f} (1 s.e.)"
    )


def test_trained_learner_beats_chance_clearly(case):
    """Beating a twin that is broken (constant predictions, say) is not enough: the learner must also learn."""
    accuracy = case.trained.accuracies
    assert lower_bound(accuracy) > 1 / WAYS + ABOVE_CHANCE, f"{case.name}: {accuracy.mean():.3f}"


@pytest.mark.parametrize("name", registry.names("learner"))
def test_learner_says_what_it_is(name):
    """What ``fewshot learners`` and the leaderboard show: its paper, its family, its hyperparameters."""
    cls = registry.learner(name)
    assert cls.paper and cls.family and isinstance(cls.hparams, dict)
