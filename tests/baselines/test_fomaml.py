import torch
import torch.nn.functional as F

from baselines_helpers import short_training
from fewshot.baselines.fomaml import FOMAML
from fewshot.baselines.inner_loop import adapt, detached_parameters
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def test_meta_gradient_is_the_query_gradient_at_the_adapted_parameters():
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    torch.manual_seed(0)
    learner = FOMAML(task, {**FOMAML.hparams, "meta_batch": 1, "meta_lr": 0.0, "inner_steps": 2})
    generator = torch.Generator().manual_seed(1)
    episode = Episode(
        torch.rand(3, 1, 28, 28, generator=generator),
        grouped_labels(3, 1),
        torch.rand(6, 1, 28, 28, generator=generator),
        grouped_labels(3, 2),
        torch.arange(3),
    )
    fast = adapt(
        learner.net.forward_with,
        detached_parameters(learner.net),
        episode.support_x,
        episode.support_y,
        2,
        learner.settings["inner_lr"],
        second_order=False,
    )
    fast = {k: v.detach().requires_grad_() for k, v in fast.items()}
    loss = F.cross_entropy(learner.net.forward_with(fast, episode.query_x), episode.query_y)
    expected = dict(zip(fast, torch.autograd.grad(loss, list(fast.values()))))
    learner.train_step([episode])
    for name, p in learner.net.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-6), name


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(
        omniglot["lake"], "fomaml", 80, meta_batch="4", train_queries="5", meta_lr="0.003"
    )
    assert trained > 0.5, trained  # chance is 0.2
    assert trained > untrained + 0.15, (trained, untrained)
