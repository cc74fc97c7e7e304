"""Short real trainings shared by the learner tests."""
import torch

from fewshot import experiment
from fewshot.harness import Budget, evaluate


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
    from fewshot.episode import random_episode as engine_random_episode

    return engine_random_episode(ways, shots, queries, seed)
