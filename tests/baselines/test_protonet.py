import torch

from baselines_helpers import short_training


def test_prototype_logits_are_negative_squared_distances():
    from fewshot.baselines.protonet import prototype_logits

    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 12.0]])
    query = torch.tensor([[1.0, 0.0], [10.0, 11.0]])
    logits = prototype_logits(support, query, ways=2)
    assert torch.allclose(logits, torch.tensor([[0.0, -(81 + 121.0)], [-(81 + 121.0), 0.0]]))


def test_beats_chance_clearly_on_omniglot(omniglot):
    learner, untrained = short_training(omniglot["lake"], "protonet", 150, train_ways="20", train_queries="5")
    assert learner > 0.85, learner
    assert learner > untrained + 0.1
