import math

import torch

from baselines_helpers import short_training
from fewshot.baselines.matchingnet import FullContext, MatchingNet
from fewshot.core.learner import TaskSpec


def _learner(**hp):
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 2, 1, 1, 10)
    return MatchingNet(task, {**MatchingNet.hparams, **hp})


def test_attention_over_the_support_set_by_hand():
    learner = _learner(similarity="cosine")
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[2.0, 0.0]])
    cosines = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])
    attention = cosines.exp() / cosines.exp().sum()
    expected = torch.stack([attention[0], attention[1] + attention[2]]).log()
    assert torch.allclose(learner.log_probabilities(support, labels, query, 2)[0], expected, atol=1e-6)


def test_support_cosine_scales_the_cosine_by_the_query_norm():
    support = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1])
    query = torch.tensor([[2.0, 0.0]])
    similarities = torch.tensor([2.0, 0.0])  # |f(x)| = 2 times the cosines 1 and 0
    expected = torch.log_softmax(similarities, dim=0)
    log_p = _learner().log_probabilities(support, labels, query, 2)[0]
    assert torch.allclose(log_p, expected, atol=1e-6)
    assert log_p.argmax() == _learner(similarity="cosine").log_probabilities(support, labels, query, 2)[0].argmax()


def test_full_context_embeddings_read_the_support_set():
    context = FullContext(4, steps=3)
    g = context.support(torch.randn(6, 4))
    f = torch.randn(2, 4)
    assert g.shape == (6, 4) and context.query(f, g).shape == (2, 4)
    changed = context.query(f, g + 1.0)
    assert not torch.allclose(changed, context.query(f, g)), "the query embedding depends on the support set"


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "matchingnet", 150, train_ways="20")
    assert trained > 0.6, trained  # chance is 0.2
    assert trained > untrained + 0.1
