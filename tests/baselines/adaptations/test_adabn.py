import copy

import torch

from fewshot.baselines.adaptations.adabn import AdaBN, batch_norms
from fewshot.core.backbones import LeNet


def _trained_lenet():
    torch.manual_seed(0)
    net = LeNet(1, batch_norm=True)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(32, 1, 28, 28))  # running statistics of "source" images
    return net.eval()


def test_adabn_changes_only_the_normalisation_statistics_to_those_of_the_target_images():
    net = _trained_lenet()
    before = copy.deepcopy(net)
    target = [torch.rand(50, 1, 28, 28) * 0.3 + 0.6 for _ in range(2)]
    AdaBN(100, 10, {}, 0).before_evaluation(net, iter(target))
    for (name, a), b in zip(net.named_parameters(), before.parameters()):
        assert torch.equal(a, b), name
    first = batch_norms(net)[0]
    activations = net.blocks[0][0](torch.cat(target))  # the first convolution's output over all target images
    assert torch.allclose(first.running_mean, activations.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(first.running_var, activations.var((0, 2, 3)), rtol=1e-3)
    assert not torch.allclose(first.running_mean, batch_norms(before)[0].running_mean)
    assert [m.momentum for m in batch_norms(net)] == [m.momentum for m in batch_norms(before)]


def test_per_episode_statistics_are_used_inside_the_episode_and_restored_after():
    net = _trained_lenet()
    before = copy.deepcopy(net)
    episode = torch.rand(20, 1, 28, 28) * 0.5
    with AdaBN(100, 10, {}, 0).normalise_episode(net, episode):
        inside = net(episode)
        assert not torch.allclose(batch_norms(net)[0].running_mean, batch_norms(before)[0].running_mean)
    for a, b in zip(net.state_dict().values(), before.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.allclose(inside, before(episode))
