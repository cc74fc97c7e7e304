import math

import pytest
import torch

from baselines_helpers import random_episode, short_training
from fewshot.baselines.inner_loop import adapt, detached_parameters
from fewshot.baselines.lstmopt import LSTMOptimizer
from fewshot.core.learner import TaskSpec


def _learner(**hp):
    torch.manual_seed(0)
    return LSTMOptimizer(
        TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10),
        {**LSTMOptimizer.hparams, "inner_steps": 5, "unroll": 2, **hp},
    )


def test_training_updates_the_lstm_after_each_truncation_and_never_the_start():
    learner = _learner()
    start = learner.initial_parameters().clone()
    before = {k: v.detach().clone() for k, v in learner.update_lstm.named_parameters()}
    learner.train_step([random_episode()])
    assert torch.equal(learner.initial_parameters(), start), "the classifier's start is fixed"
    assert all(not p.requires_grad for p in learner.net.parameters())
    assert all(not torch.equal(p.detach(), before[k]) for k, p in learner.update_lstm.named_parameters()), (
        "every weight of the optimiser learned"
    )
    steps = {int(state["step"]) for state in learner.optimizer.state.values()}
    assert steps == {math.ceil(5 / 2)}, "one Adam step per truncated segment"


def test_sgd_in_place_of_the_lstm_is_plain_fine_tuning_from_the_same_start():
    learner = _learner(update_rule="sgd", baseline_lr=0.3)
    episode = random_episode()
    fast = adapt(
        learner.net.forward_with,
        detached_parameters(learner.net),
        episode.support_x,
        episode.support_y,
        5,
        0.3,
        second_order=False,
    )
    assert torch.allclose(learner.predict(episode), learner.net.forward_with(fast, episode.query_x).detach(), atol=1e-5)


def test_the_objective_is_a_choice_and_unroll_must_be_positive():
    assert _learner(objective="support").train_step([random_episode()])["acc"] >= 0
    with pytest.raises(ValueError, match="unroll"):
        _learner(unroll=0)


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(
        omniglot["lake"], "lstmopt", 60, episodes=60, inner_steps="5", hidden="16", train_queries="5"
    )
    assert trained > 0.4, trained  # chance is 0.2
    assert trained > untrained + 0.1, (trained, untrained)
