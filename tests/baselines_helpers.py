"""Short real trainings shared by the learner tests."""

import torch

from fewshot.run import experiment
from fewshot.run.evaluation import evaluate
from fewshot.run.training import Budget


def short_training(bench, learner, steps, episodes=100, compare=True, ways=5, **hp):
    """(accuracy after ``steps`` training steps, accuracy untrained) on ``ways``-way 1-shot test episodes."""
    cell = experiment.resolve_cell(bench, ways, 1, 5, episodes, 0)
    setup = experiment.make_setup(learner, hp, bench, cell)
    source = experiment.test_source(bench, cell)
    trained = experiment.ensure_trained(setup, Budget(steps=steps), torch.device("cpu"), progress=False)
    untrained = evaluate(experiment.build(setup, torch.device("cpu")), source, episodes).mean if compare else None
    return evaluate(trained.learner, source, episodes).mean, untrained


def random_episode(seed=0, ways=3, shots=1, queries=2):
    """An episode of random 28x28 images with grouped labels: enough to run a learner's steps."""
    from fewshot.core.episode import random_episode as engine_random_episode

    return engine_random_episode(ways, shots, queries, seed)


_EMBEDDINGS: dict = {}


def zero_shot_learner(bench, name, side="attributes", steps=600, ways=5, **hp):
    """(setup, learner) of a zero-shot learner on ``bench`` whose embedding trained ``steps`` steps.

    The four zero-shot learners train the same embedding (``ZeroShotLearner.train_step``), so it is trained
    once per benchmark and loaded into each; ``prepare`` is left to ``experiment.evaluate_setup``.
    """
    cell = experiment.resolve_cell(bench, ways, 0, 15, 100, 0)
    setup = experiment.make_setup(name, {k: str(v) for k, v in hp.items()}, bench, cell, side)
    key = (bench.dataset, bench.protocol, steps)
    if key not in _EMBEDDINGS:
        trained = experiment.ensure_trained(setup, Budget(steps=steps), torch.device("cpu"), progress=False)
        _EMBEDDINGS[key] = trained.learner.state_dict()
    learner = experiment.build(setup, torch.device("cpu"))
    learner.load_state_dict(_EMBEDDINGS[key])
    return setup, learner


def zero_shot_accuracy(bench, name, side="attributes", **hp):
    """Accuracy of a briefly trained zero-shot learner on 100 5-way zero-shot episodes of ``bench``."""
    setup, learner = zero_shot_learner(bench, name, side, **hp)
    experiment.test_source(bench, setup.cell, setup.side)
    return experiment.evaluate_setup(setup, learner, torch.device("cpu")).mean
