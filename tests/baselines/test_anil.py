import torch

from baselines_helpers import short_training
from fewshot.baselines.anil import ANIL
from fewshot.baselines.inner_loop import meta_parameters
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def test_the_inner_loop_changes_the_head_only():
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    learner = ANIL(task, {**ANIL.hparams, "inner_steps": 3})
    generator = torch.Generator().manual_seed(1)
    episode = Episode(
        torch.rand(3, 1, 28, 28, generator=generator),
        grouped_labels(3, 1),
        torch.rand(6, 1, 28, 28, generator=generator),
        grouped_labels(3, 2),
        torch.arange(3),
    )
    params = meta_parameters(learner.net)
    fast = learner.adapt_to(episode, params, 3, second_order=True)
    assert set(fast) == set(params)
    for name in params:
        if name.startswith("body."):
            assert fast[name] is params[name], f"{name} changed within the episode"
        else:
            assert not torch.allclose(fast[name], params[name]), f"{name} was not adapted"
    loss = learner.net.forward_with(fast, episode.query_x).logsumexp(1).sum()
    body_grad = torch.autograd.grad(loss, params["body.0.weight"])[0]
    assert body_grad.abs().sum() > 0, "the body is meta-learned through the head's adaptation"


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "anil", 40, meta_batch="8", train_queries="5")
    assert trained > 0.6, trained  # chance is 0.2
    assert trained > untrained + 0.15, (trained, untrained)
