import numpy as np
import torch

from baselines_helpers import random_episode
from fewshot.baselines.learned_optimizer import SGD
from fewshot.baselines.metalstm import MetaLSTM
from fewshot.core.learner import TaskSpec
from fewshot.leaderboard.studies.inner_steps import LEARNING_RATES, accuracy_by_step, best_learning_rate


def _learner():
    torch.manual_seed(0)
    return MetaLSTM(TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 4, 10), {**MetaLSTM.hparams, "inner_steps": 3})


def test_accuracy_is_recorded_before_and_after_every_step_on_the_same_episodes():
    learner, episodes = _learner(), [random_episode(seed, queries=4) for seed in range(3)]
    still = accuracy_by_step(learner, episodes, 3, SGD(0.0), 4)
    assert still.shape == (3, 5) and (still == still[:, :1]).all(), "a zero learning rate changes nothing"
    moving = accuracy_by_step(learner, episodes, 3, SGD(0.5), 4)
    assert np.array_equal(moving[:, 0], still[:, 0]), "every rule starts from the learner's start"
    assert np.allclose(moving * 12, np.round(moving * 12)), "each accuracy is a count of the 12 queries"
    assert not np.array_equal(moving, still), "a real step moves some prediction"


def test_the_learning_rate_is_chosen_from_the_grid():
    learner, episodes = _learner(), [random_episode(seed) for seed in range(2)]
    assert best_learning_rate(learner, episodes, 2, "adam", 2) in LEARNING_RATES
