import torch
import torch.nn.functional as F
from torch import nn

from fewshot.baselines.adaptations.autodial import AlignmentLayer, AutoDIAL


def _layer(alpha):
    norm = nn.BatchNorm2d(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm, AlignmentLayer(norm, alpha)


def test_half_mixing_on_equal_halves_is_batch_norm_of_the_joined_batch():
    norm, layer = _layer(0.5)
    x = torch.cat([torch.randn(6, 4, 3, 3), torch.randn(6, 4, 3, 3) * 2 + 1])
    layer.split = (6, 6)
    expected = F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_full_mixing_normalises_each_domain_by_its_own_statistics_and_keeps_both():
    norm, layer = _layer(1.0)
    source, target = torch.randn(5, 4, 3, 3), torch.randn(7, 4, 3, 3) * 3 - 2
    layer.split = (5, 7)
    out = layer(torch.cat([source, target]))
    for rows, part in ((slice(0, 5), source), (slice(5, None), target)):
        own = F.batch_norm(part, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        assert torch.allclose(out[rows], own, atol=1e-5)
    assert float(layer.target_mean.mean()) < float(layer.source_mean.mean())  # the target's running mean moved down
    layer.eval()  # test images are normalised by the target's running statistics
    expected = (target - layer.target_mean.view(1, -1, 1, 1)) / torch.sqrt(
        layer.target_var.view(1, -1, 1, 1) + norm.eps
    )
    assert torch.allclose(
        layer(target), expected * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1), atol=1e-5
    )


def test_the_mixing_weight_is_learned_within_its_range_and_the_layers_replace_batch_norm():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 8), nn.BatchNorm1d(8)
    )
    method = AutoDIAL(8, 0, {**AutoDIAL.hparams, "alpha": 0.8}, 10)
    method.attach(net)
    assert isinstance(net[1], AlignmentLayer) and isinstance(net[5], AlignmentLayer) and len(method.layers) == 2
    method.begin_batch((4, 4))
    net(torch.randn(8, 1, 28, 28)).pow(2).sum().backward()
    assert all(layer.alpha.grad is not None for layer in method.layers)
    method.layers[0].alpha.data.fill_(3.0)
    assert method.mixing_weights()[0] == 1.0


def test_a_network_without_batch_norm_gets_an_alignment_layer_after_every_convolution_and_linear_layer():
    from fewshot.core.backbones import LeNet

    net = LeNet(3)
    method = AutoDIAL(100, 10, AutoDIAL.hparams, 10)
    method.attach(net)
    assert len(method.layers) == 4
    assert isinstance(net.blocks[0][0][1], AlignmentLayer) and isinstance(net.blocks[3][0][1], AlignmentLayer)
    method.begin_batch((3, 3))
    assert net(torch.rand(6, 3, 28, 28)).shape == (6, 100)


def test_equal_halves_and_unequal_parts_both_normalise_by_the_mixed_statistics():
    from fewshot.baselines.adaptations.autodial import mixed

    for sources, targets in ((6, 6), (6, 7)):
        norm, layer = _layer(0.7)
        x = torch.randn(sources + targets, 4, 3, 3)
        layer.split = (sources, targets)
        out = layer(x)
        parts = (x[:sources], x[sources:])
        stats = [(p.mean((0, 2, 3)), p.var((0, 2, 3), unbiased=False)) for p in parts]
        for i, part in enumerate(parts):
            mean, var = mixed(*stats[i], *stats[1 - i], torch.tensor(0.7))
            expected = F.batch_norm(part, mean, var, norm.weight, norm.bias, False, 0.0, norm.eps)
            assert torch.allclose(out[:sources] if i == 0 else out[sources:], expected, atol=1e-5), (sources, targets)


def test_a_learner_with_alignment_layers_moves_between_devices_and_trains(data_root):
    from fewshot.run import experiment
    from fewshot.run.training import Budget

    bench = experiment.open_benchmark("digits", "uda", data_root, source="mnist", target="usps")
    cell = experiment.resolve_cell(bench, None, None, None, None, 0)
    setup = experiment.make_setup("finetune", {}, bench, cell, None, "autodial")
    learner = experiment.build(setup, torch.device("cpu"), Budget(steps=10))  # .to(device) walks every layer
    batch_at = experiment.batches_for(setup, learner)
    stats = [learner.train_step(batch_at(step)) for step in range(3)]
    assert all(s["adapt_loss"] > 0 for s in stats)  # the target entropy term
    assert len(learner.adaptation.layers) == 4 and learner.optimizer is not None


def test_the_hand_written_backward_of_equal_halves_matches_autograd_to_second_order():
    from fewshot.baselines.adaptations.autodial import _AlignHalves, aligned_halves

    torch.manual_seed(0)
    _norm, layer = _layer(0.8)
    halves = torch.randn(2, 3, 4, 2, 2, dtype=torch.float64)
    halves[1] = halves[1] * 2 + 1
    layer = layer.double()
    params = (layer.alpha, layer.weight, layer.bias)

    def fused(h, a, w, b):
        return _AlignHalves.apply(h, layer, a, w, b)

    inputs = (halves.requires_grad_(), *params)
    assert torch.allclose(fused(*inputs), aligned_halves(*inputs, layer.eps))
    assert torch.autograd.gradcheck(fused, inputs)
    assert torch.autograd.gradgradcheck(fused, inputs)
