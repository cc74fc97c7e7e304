import pytest
import torch

from baselines_helpers import short_training
from fewshot.baselines.metasgd import MetaSGD
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def _learner(**hp):
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    torch.manual_seed(0)
    return MetaSGD(task, {**MetaSGD.hparams, "meta_batch": 2, **hp})


def _episode(seed):
    generator = torch.Generator().manual_seed(seed)
    return Episode(
        torch.rand(3, 1, 28, 28, generator=generator),
        grouped_labels(3, 1),
        torch.rand(6, 1, 28, 28, generator=generator),
        grouped_labels(3, 2),
        torch.arange(3),
        seed=seed,
    )


def test_one_learned_step_size_per_parameter_element_starting_in_the_paper_s_range():
    learner = _learner()
    for name, p in learner.net.named_parameters():
        alpha = learner.step_sizes()[name]
        assert alpha.shape == p.shape and alpha.min() >= 0.005 and alpha.max() <= 0.1
    with pytest.raises(ValueError, match="lr_init"):
        _learner(lr_init_low=0.2, lr_init_high=0.1)


def test_the_step_sizes_receive_gradients_and_are_learned():
    learner = _learner()
    before = {k: v.detach().clone() for k, v in learner.step_size.items()}
    learner.train_step([_episode(0), _episode(1)])
    for name, alpha in learner.step_size.items():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, name
        if name.endswith("weight"):  # a bias before batch norm has a vanishing gradient: its step size barely moves
            assert not torch.equal(alpha.detach(), before[name]), name
    assert any(p is learner.step_size["head_weight"] for g in learner.optimizer.param_groups for p in g["params"])


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "metasgd", 40, meta_batch="8", train_queries="5")
    assert trained > 0.55, trained  # chance is 0.2
    assert trained > untrained + 0.15, (trained, untrained)
