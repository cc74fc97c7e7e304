"""What ``fewshot.core.backbones`` promises: the papers' architectures (shapes and parameter counts worked out
from their descriptions), its docstrings' claims, and failures that name the way out.

Every expected number below is computed by hand from the architecture the paper describes, not read back
from the code, so a changed kernel, padding, filter count or layer fails here.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.backbones import (
    NETWORKS,
    Conv4,
    LeNet,
    MAMLConv4,
    MAMLResNet12,
    ResNet12,
    conv_as_matmul,
    gradient_network,
    head_with,
    make_backbone,
)
from fewshot.core.errors import FewshotError


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_bn(in_channels: int, out_channels: int, kernel: int) -> int:
    """Weights and bias of a convolution, then batch norm's scale and shift."""
    return in_channels * out_channels * kernel * kernel + out_channels + 2 * out_channels


# Conv-4 (Vinyals et al. 2016; Snell et al. 2017): four blocks of 3x3 convolution with 64 filters and batch norm.
CONV4_GRAY = conv_bn(1, 64, 3) + 3 * conv_bn(64, 64, 3)  # 768 + 3 * 37,056 = 111,936
CONV4_RGB = conv_bn(3, 64, 3) + 3 * conv_bn(64, 64, 3)  # 1,920 + 111,168 = 113,088 on RGB images (miniImageNet)
# Ganin et al. 2016's MNIST network: 5x5 convolutions with 32 and 48 filters, fully connected 100 and 100.
LENET_28 = (1 * 32 * 25 + 32) + (32 * 48 * 25 + 48) + (48 * 4 * 4 * 100 + 100) + (100 * 100 + 100)  # 126,280


def test_conv4_parameter_counts_are_the_papers_architecture():
    assert CONV4_GRAY == 111_936 and CONV4_RGB == 113_088
    assert parameter_count(Conv4(1)) == CONV4_GRAY
    assert parameter_count(Conv4(3)) == CONV4_RGB
    assert parameter_count(Conv4(1, hidden=32)) == conv_bn(1, 32, 3) + 3 * conv_bn(32, 32, 3)


@pytest.mark.parametrize(
    "channels, size, width",
    [
        (1, 28, 64),  # Omniglot: 28 -> 14 -> 7 -> 3 -> 1, a 64-dimensional embedding (the module's docstring)
        (3, 84, 1600),  # miniImageNet: 84 -> 42 -> 21 -> 10 -> 5, 64 * 5 * 5 = 1600 (Snell et al. 2017)
        (3, 32, 256),  # 32 -> 16 -> 8 -> 4 -> 2: 64 * 2 * 2
    ],
)
def test_conv4_halves_the_image_four_times(channels, size, width):
    net = Conv4(channels).eval()
    with torch.no_grad():
        assert net(torch.randn(3, channels, size, size)).shape == (3, width)
    assert Conv4.output_dim((channels, size, size)) == width


def test_conv4_holds_only_parameters_and_batch_norm_statistics():
    """The docstring's promise that lets gradient learners call it through ``torch.func.functional_call``."""
    net = Conv4(1)
    buffers = {name.rsplit(".", 1)[1] for name, _ in net.named_buffers()}
    assert buffers == {"running_mean", "running_var", "num_batches_tracked"}
    assert len(list(net.named_buffers())) == 3 * 4
    assert not [name for name, value in vars(net).items() if isinstance(value, torch.Tensor)]


def test_conv4_runs_channels_last_with_the_same_numbers():
    """Weights are stored channels-last and the activations run in that layout; the docstring says
    results equal the plain layout's up to float rounding."""
    torch.manual_seed(0)
    net = Conv4(1).eval()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            assert module.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 28, 28)
    first = net.blocks[0](x.contiguous(memory_format=torch.channels_last))
    assert first.is_contiguous(memory_format=torch.channels_last)
    plain = Conv4(1).eval()
    plain.load_state_dict(net.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        assert torch.allclose(net(x), plain.blocks(x.contiguous()).flatten(1), atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [lambda: Conv4(1), lambda: LeNet(1), lambda: LeNet(1, batch_norm=True), lambda: ResNet12(1)],
    ids=["conv4", "lenet", "lenet-bn", "resnet12"],
)
def test_features_split_at_any_block_compose_to_the_whole_network(make):
    """Partly frozen fine-tuning runs blocks ``0..k`` once and ``k..4`` per step: the pieces must compose."""
    torch.manual_seed(0)
    net = make().eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        whole = net(x)
        assert torch.allclose(net.features(x), whole, atol=1e-6)
        assert torch.allclose(net.features(x, 0, len(net.blocks)), whole, atol=1e-6)
        for cut in range(len(net.blocks)):
            assert torch.allclose(net.features(net.features(x, 0, cut), cut), whole, atol=1e-5), cut


def test_lenet_is_ganins_digit_network():
    net = LeNet(1)
    assert parameter_count(net) == LENET_28 == 126_280
    assert [type(m) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))] == [nn.Conv2d] * 2 + [
        nn.Linear
    ] * 2
    assert [m.kernel_size for m in net.modules() if isinstance(m, nn.Conv2d)] == [(5, 5), (5, 5)]
    assert not [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 100)
        # 32x32 three-channel digits (SVHN's size): 32 -> 28 -> 14 -> 10 -> 5, 48 * 5 * 5 inputs to the first layer
        wide = LeNet(3, image_size=32).eval()
        assert wide.blocks[2][1].in_features == 48 * 5 * 5
        assert wide(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_lenet_bn_adds_batch_norm_after_every_layer():
    """``lenet-bn`` is AdaBN's network: one batch norm after each of the four layers, nothing else added."""
    net = LeNet(1, batch_norm=True)
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert [m.num_features for m in norms] == [32, 48, 100, 100]
    assert parameter_count(net) == LENET_28 + 2 * (32 + 48 + 100 + 100)


def test_lenet_marks_the_end_of_ganins_feature_extractor():
    """DANN's domain classifier reads the output of ``extractor_end``: the two convolutions, 48 x 4 x 4 on 28x28."""
    net = LeNet(1).eval()
    seen = []
    net.get_submodule(net.extractor_end).register_forward_hook(lambda m, args, out: seen.append(out.shape))
    with torch.no_grad():
        net(torch.randn(2, 1, 28, 28))
    assert seen == [(2, 48, 4, 4)]


@pytest.mark.parametrize(
    "network, shape, width",
    [
        ("conv4", (1, 28, 28), 64),
        ("conv4", (3, 84, 84), 1600),
        ("lenet", (1, 28, 28), 100),
        ("lenet-bn", (1, 28, 28), 100),
        ("lenet", (3, 32, 32), 100),
        ("resnet12", (3, 84, 84), 640 * 5 * 5),
        ("resnet12", (3, 32, 32), 640 * 2 * 2),
    ],
)
def test_make_backbone_reports_the_width_its_network_outputs(network, shape, width):
    net, reported = make_backbone(network, shape)
    assert reported == width
    with torch.no_grad():
        assert net.eval()(torch.randn(2, *shape)).shape == (2, width)


def test_make_backbone_offers_every_network_it_names():
    for network in NETWORKS:
        make_backbone(network, (1, 28, 28))
    assert make_backbone("conv4", (1, 28, 28), hidden=32)[1] == 32


def test_an_unknown_network_is_a_fewshot_error_listing_the_known_ones():
    with pytest.raises(
        FewshotError, match="unknown network 'resnet18': choose one of conv4, resnet12, lenet, lenet-bn"
    ):
        make_backbone("resnet18", (1, 28, 28))
    with pytest.raises(FewshotError, match="12 px is too small"):
        make_backbone("resnet12", (3, 12, 12))


@pytest.mark.parametrize(
    "make",
    [lambda: Conv4(1), lambda: LeNet(1, batch_norm=True), lambda: MAMLConv4((1, 28, 28), 5)],
    ids=["conv4", "lenet-bn", "maml-conv4"],
)
def test_initialisation_is_a_function_of_the_seed(make):
    """Two builds under one seed are equal to the bit; another seed gives other weights."""

    def built(seed):
        torch.manual_seed(seed)
        return make().state_dict()

    first, again, other = built(0), built(0), built(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


# -- Finn et al.'s network ---------------------------------------------------------------------------------
def test_maml_conv4_is_finns_strided_network():
    """Four 3x3 stride-2 convolutions of 64 filters: 28 -> 14 -> 7 -> 4 -> 2, so 64 * 2 * 2 = 256 features,
    then the ``ways`` logits; ``pool=True`` max-pools instead (28 -> ... -> 1: 64 features)."""
    net = MAMLConv4((1, 28, 28), ways=5)
    assert net.head.in_features == 256 and net.head.out_features == 5
    assert parameter_count(net) == CONV4_GRAY + 256 * 5 + 5
    assert all(m.stride == (2, 2) for m in net.modules() if isinstance(m, nn.Conv2d))
    assert not [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    pooled = MAMLConv4((1, 28, 28), ways=5, pool=True)
    assert pooled.head.in_features == 64
    # Ravi & Larochelle's (and Finn et al.'s miniImageNet) 32 filters, pooled, on 84x84: 32 * 5 * 5 = 800
    assert MAMLConv4((3, 84, 84), ways=5, hidden=32, pool=True).head.in_features == 800
    with torch.no_grad():
        assert net(torch.randn(6, 1, 28, 28)).shape == (6, 5)


def test_maml_conv4_normalises_with_the_batchs_statistics_even_in_eval_mode():
    """No running statistics: an image's logits depend on the batch it is in, in training and at test time."""
    torch.manual_seed(0)
    net = MAMLConv4((1, 28, 28), ways=5)
    assert not list(net.buffers())
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        train_mode = net.train()(x)
        eval_mode = net.eval()(x)
        alone = net(x[:3])
    assert torch.allclose(train_mode, eval_mode)
    assert not torch.allclose(alone, eval_mode[:3], atol=1e-4)


@pytest.mark.parametrize("batch", [4, MAMLConv4.large_batch + 8], ids=["small", "large"])
def test_forward_with_is_a_pure_function_of_the_given_parameters(batch):
    """``forward_with`` on the module's own parameters equals ``forward``; on other parameters it reads those
    and leaves the module's tensors as they were (so threads can run tasks at once). Both sides of
    ``large_batch`` are checked, where the first convolution runs as one matrix product."""
    torch.manual_seed(0)
    net = MAMLConv4((1, 28, 28), ways=5)
    x = torch.randn(batch, 1, 28, 28)
    own = {name: p.detach().clone() for name, p in net.named_parameters()}
    shifted = {name: p + 0.01 for name, p in own.items()}
    with torch.no_grad():
        assert torch.allclose(net.forward_with(dict(net.named_parameters()), x), net(x))
        moved = net.forward_with(shifted, x)
        reference = torch.func.functional_call(net, shifted, (x,))
    assert torch.allclose(moved, reference, atol=1e-4)
    assert all(torch.equal(p, own[name]) for name, p in net.named_parameters())


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_as_matmul_is_the_convolution_in_channels_last_layout(stride):
    """The oracle is ``F.conv2d``; the docstring's layout claim is checked on the result."""
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 8, 3, stride=stride, padding=1)
    x = torch.randn(5, 3, 13, 13)
    out = conv_as_matmul(x, layer.weight, layer.bias, layer)
    expected = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_head_with_is_a_linear_layer_on_explicit_parameters():
    torch.manual_seed(0)
    layer = nn.Linear(7, 3)
    x = torch.randn(4, 7)
    params = {"head.weight": layer.weight, "head.bias": layer.bias}
    assert torch.allclose(head_with(params, x, "head."), layer(x))


def test_resnet12_is_lee_et_als_network():
    """64-160-320-640 filters, three 3x3 convolutions without bias and a 1x1 shortcut per block, batch norm after
    each: 12.4M parameters, as MetaOptNet's ResNet-12 without DropBlock."""
    net = ResNet12(3)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs if c.kernel_size == (1, 1)] == [64, 160, 320, 640]
    assert all(c.bias is None for c in convs) and len(convs) == 16
    widths = (64, 160, 320, 640)
    ins = (3, *widths[:-1])
    expected = sum(i * w * 9 + 2 * w * w * 9 + i * w + 4 * 2 * w for i, w in zip(ins, widths))
    assert parameter_count(net) == expected == 12_424_320


def test_resnet12_block_is_the_residual_function_by_hand():
    """A block computed with plain torch calls: conv-bn-leaky, conv-bn-leaky, conv-bn, plus the shortcut's
    conv-bn, leaky, 2x2 max-pool."""
    torch.manual_seed(0)
    block = ResNet12(2).blocks[0].eval()
    for bn in (block.bn1, block.bn2, block.bn3, block.shortcut_bn):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(3, 2, 8, 8)
    out = F.leaky_relu(block.bn1(F.conv2d(x, block.conv1.weight, padding=1)), 0.1)
    out = F.leaky_relu(block.bn2(F.conv2d(out, block.conv2.weight, padding=1)), 0.1)
    out = block.bn3(F.conv2d(out, block.conv3.weight, padding=1))
    expected = F.max_pool2d(F.leaky_relu(out + block.shortcut_bn(F.conv2d(x, block.shortcut.weight)), 0.1), 2)
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_maml_resnet12_is_a_pure_function_of_the_given_parameters_with_batch_statistics():
    torch.manual_seed(0)
    net = MAMLResNet12((3, 32, 32), 5).eval()
    x = torch.randn(6, 3, 32, 32)
    params = {name: p.detach() + 0.01 for name, p in net.named_parameters()}
    before = {name: p.clone() for name, p in net.named_parameters()}
    shifted = net.forward_with(params, x)
    assert not torch.allclose(shifted, net(x)), "the given parameters, not the module's, are used"
    assert all(torch.equal(p, before[name]) for name, p in net.named_parameters())
    assert not list(net.buffers()), "no running statistics: batch norm always uses the batch's"
    first_two = net(x[:2])
    assert not torch.allclose(first_two, net(x)[:2]), "the statistics are those of the batch given (transductive)"


def test_gradient_network_takes_finns_miniimagenet_network_on_rgb_images_unless_told():
    rgb = gradient_network("auto", (3, 84, 84), 5, 64, False)
    assert isinstance(rgb, MAMLConv4) and rgb.body[0].out_channels == 32
    assert any(isinstance(m, nn.MaxPool2d) for m in rgb.body)
    grey = gradient_network("auto", (1, 28, 28), 5, 64, False)
    assert grey.body[0].out_channels == 64 and not any(isinstance(m, nn.MaxPool2d) for m in grey.body)
    digits = gradient_network("auto", (3, 28, 28), 5, 64, False, network="lenet")
    assert digits.body[0].out_channels == 64, "the digit domains keep the Omniglot network"
    assert gradient_network("conv4", (3, 84, 84), 5, 48, False).body[0].out_channels == 48
    assert isinstance(gradient_network("resnet12", (3, 84, 84), 5, 64, False), MAMLResNet12)


def test_resnet12_forward_and_its_pure_function_agree_in_training_and_evaluation():
    torch.manual_seed(0)
    net = ResNet12(3)
    x = torch.randn(4, 3, 32, 32)
    for mode in (True, False):
        net.train(mode)
        with torch.no_grad():
            assert torch.allclose(net(x), net.features_with(dict(net.named_parameters()), x), atol=1e-5), mode
