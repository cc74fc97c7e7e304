import copy

import pytest
import torch

from baselines_helpers import short_training
from fewshot.baselines.maml import MAML, PAPER_SETTINGS
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec, paper_defaults


def _task(ways=5):
    return TaskSpec("omniglot", "vinyals", (1, 28, 28), ways, 1, 3, 100)


def test_the_paper_s_omniglot_settings_per_way():
    five, twenty = (paper_defaults(MAML.hparams, PAPER_SETTINGS, ways) for ways in (5, 20))
    assert (five["inner_lr"], five["inner_steps"], five["test_steps"], five["meta_batch"]) == (0.4, 1, 3, 32)
    assert (twenty["inner_lr"], twenty["inner_steps"], twenty["test_steps"], twenty["meta_batch"]) == (0.1, 5, 5, 16)
    chosen = paper_defaults({**MAML.hparams, "inner_lr": 0.2, "test_steps": 7}, PAPER_SETTINGS, 20)
    assert (chosen["inner_lr"], chosen["inner_steps"], chosen["test_steps"]) == (0.2, 5, 7), "a value given stays"
    assert MAML(_task(20), dict(MAML.hparams)).train_batches().meta_batch == 16
    assert paper_defaults(MAML.hparams, PAPER_SETTINGS, 10)["inner_lr"] == 0.4, "below 20 ways: the 5-way row"
    assert paper_defaults(MAML.hparams, PAPER_SETTINGS, 2)["inner_lr"] == 0.4, "below 5 ways: the smallest row"


def test_the_network_is_the_strided_conv4_of_the_paper():
    net = MAML(_task(), dict(MAML.hparams)).net
    strides = [layer.stride for layer in net.body if isinstance(layer, torch.nn.Conv2d)]
    assert strides == [(2, 2)] * 4 and net.head.in_features == 64 * 2 * 2
    x = torch.rand(6, 1, 28, 28)
    assert torch.equal(net(x), net.forward_with(dict(net.named_parameters()), x))


def test_predict_adapts_a_copy_and_classifies_queries_together():
    learner = MAML(_task(3), dict(MAML.hparams)).eval()
    generator = torch.Generator().manual_seed(0)
    episode = Episode(
        torch.rand(3, 1, 28, 28, generator=generator),
        grouped_labels(3, 1),
        torch.rand(6, 1, 28, 28, generator=generator),
        grouped_labels(3, 2),
        torch.arange(3),
    )
    before = copy.deepcopy(learner.state_dict())
    logits = learner.predict(episode)
    assert logits.shape == (6, 3) and not logits.requires_grad
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
    assert all(p.grad is None for p in learner.parameters())
    unadapted = learner.net(episode.query_x)
    assert not torch.allclose(logits, unadapted), "the support set changed the parameters"
    alone = learner.predict(
        Episode(episode.support_x, episode.support_y, episode.query_x[:3], grouped_labels(3, 1), torch.arange(3))
    )
    assert not torch.allclose(alone, logits[:3]), "transductive: batch norm sees the whole query batch"


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(
        omniglot["lake"], "maml", 40, meta_batch="8", train_queries="5", meta_lr="0.003"
    )
    assert trained > 0.55, trained  # chance is 0.2
    assert trained > untrained + 0.15, (trained, untrained)


@pytest.mark.parametrize("pool", [False, True])
def test_large_batches_take_the_matrix_product_path_with_the_same_numbers(pool):
    net = MAML(_task(), {**MAML.hparams, "pool": pool}).net
    params = dict(net.named_parameters())
    x = torch.rand(net.large_batch, 1, 28, 28)
    fast = net.forward_with(params, x)
    net.large_batch = 10**9
    plain = net.forward_with(params, x)
    assert torch.allclose(fast, plain, atol=1e-4)
    grads = torch.autograd.grad(fast.square().sum(), params["body.0.weight"], create_graph=True)[0]
    again = torch.autograd.grad(plain.square().sum(), params["body.0.weight"], create_graph=True)[0]
    assert torch.allclose(grads, again, atol=1e-3, rtol=1e-3)
