"""Backbones shared by the learners.

Conv-4 (Vinyals et al. 2016; Snell et al. 2017): four blocks of 3x3
convolution with 64 filters, batch norm, ReLU and 2x2 max-pooling. On 28x28
Omniglot images it yields a 64-dimensional embedding. Plain modules with no
state beyond parameters and batch-norm buffers, so gradient-based learners can
call them with explicit parameters through ``torch.func.functional_call``.

Activations run in the channels-last memory layout: on the 2-core CPUs this
suite is developed on, a Conv-4 training step was 1.4x faster that way
(``benchmarks/backbone.py``); results are the same up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.errors import FewshotError


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    def __init__(self, in_channels: int = 1, hidden: int = 64, depth: int = 4):
        super().__init__()
        self.blocks = nn.Sequential(*[conv_block(in_channels if i == 0 else hidden, hidden) for i in range(depth)])
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.contiguous(memory_format=torch.channels_last)).flatten(1)

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run blocks ``start..stop`` only (the rest of a partly frozen network); flattened after the last."""
        stop = len(self.blocks) if stop is None else stop
        x = x.contiguous(memory_format=torch.channels_last)
        for block in self.blocks[start:stop]:
            x = block(x)
        return x.flatten(1) if stop == len(self.blocks) else x

    @staticmethod
    def output_dim(image_shape: tuple[int, ...], hidden: int = 64, depth: int = 4) -> int:
        with torch.no_grad():
            return Conv4(image_shape[0], hidden, depth).eval()(torch.zeros(1, *image_shape)).shape[1]


class LeNet(nn.Module):
    """Ganin et al. 2016's network for the MNIST digit shifts (LeNet-like): 5x5 convolutions with 32 and
    48 filters, each followed by ReLU and 2x2 max-pooling, then two fully connected layers of 100 units
    with ReLU; the classifier (the learner's) on top. ``batch_norm`` adds batch norm after every layer
    (network ``lenet-bn``), for AdaBN, whose method is to recompute the statistics of such layers.

    Four ``blocks`` like :class:`Conv4`, so partly frozen fine-tuning and the transfer study cut it alike.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        hidden: int = 100,
        batch_norm: bool = False,
        pixel_mean: tuple[float, ...] = (),
    ):
        super().__init__()
        # Ganin et al.'s preprocessing, "mean subtraction": a constant, so not in the state dict (a checkpoint
        # holds the weights alone, and the benchmark gives the mean again)
        mean = torch.tensor(pixel_mean, dtype=torch.float32).view(1, -1, 1, 1) if pixel_mean else torch.zeros(0)
        self.register_buffer("pixel_mean", mean, persistent=False)
        side = ((image_size - 4) // 2 - 4) // 2
        norm2d = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        norm1d = (lambda c: nn.BatchNorm1d(c)) if batch_norm else (lambda c: nn.Identity())
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, 32, 5), norm2d(32), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(32, 48, 5), norm2d(48), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Flatten(), nn.Linear(48 * side * side, hidden), norm1d(hidden), nn.ReLU()),
            nn.Sequential(nn.Linear(hidden, hidden), norm1d(hidden), nn.ReLU()),
        )
        self.output_features = hidden

    pixel_mean: torch.Tensor  # a buffer: [1, C, 1, 1], or empty for none

    # Where Ganin et al.'s feature extractor ends (the convolutions): their domain classifier reads it.
    extractor_end = "blocks.1"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.centred(x))

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.pixel_mean if self.pixel_mean.numel() else x

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        if start == 0:
            x = self.centred(x)
        for block in self.blocks[start:stop]:
            x = block(x)
        return x


class ResidualBlock(nn.Module):
    """One ResNet-12 block: three 3x3 convolutions (no bias) with batch norm, LeakyReLU(0.1) after the first
    two and after the sum with a 1x1-convolution shortcut, then 2x2 max-pooling."""

    slope = 0.1

    def __init__(self, in_channels: int, width: int, track_running_stats: bool = True):
        super().__init__()

        def conv(channels: int) -> nn.Conv2d:
            return nn.Conv2d(channels, width, 3, padding=1, bias=False)

        def norm() -> nn.BatchNorm2d:
            return nn.BatchNorm2d(width, track_running_stats=track_running_stats)

        self.conv1, self.bn1 = conv(in_channels), norm()
        self.conv2, self.bn2 = conv(width), norm()
        self.conv3, self.bn3 = conv(width), norm()
        self.shortcut = nn.Conv2d(in_channels, width, 1, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(width, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # through the modules, so that a method that swaps or hooks a layer (AutoDIAL, AdaBN) acts on it
        x = x.contiguous(memory_format=torch.channels_last)
        out = F.leaky_relu(self.bn1(self.conv1(x)), self.slope)
        out = F.leaky_relu(self.bn2(self.conv2(out)), self.slope)
        out = self.bn3(self.conv3(out))
        return F.max_pool2d(F.leaky_relu(out + self.shortcut_bn(self.shortcut(x)), self.slope), 2)

    def forward_with(self, params: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
        """:meth:`forward` as a pure function of ``params``, for inner loops through adapted weights."""

        def norm(y: torch.Tensor, bn: str) -> torch.Tensor:
            layer = getattr(self, bn)
            tracked = layer.running_mean is not None
            return F.batch_norm(
                y,
                layer.running_mean if tracked else None,
                layer.running_var if tracked else None,
                params[f"{prefix}{bn}.weight"],
                params[f"{prefix}{bn}.bias"],
                self.training or not tracked,
                0.1 if layer.momentum is None else layer.momentum,
                layer.eps,
            )

        out = x.contiguous(memory_format=torch.channels_last)
        for i in (1, 2, 3):
            out = norm(F.conv2d(out, params[f"{prefix}conv{i}.weight"], padding=1), f"bn{i}")
            if i < 3:
                out = F.leaky_relu(out, self.slope)
        shortcut = norm(F.conv2d(x, params[f"{prefix}shortcut.weight"]), "shortcut_bn")
        return F.max_pool2d(F.leaky_relu(out + shortcut, self.slope), 2)


class ResNet12(nn.Module):
    """ResNet-12 as Lee et al. 2019 (MetaOptNet) use it on miniImageNet, tieredImageNet, CIFAR-FS and FC100,
    after Oreshkin et al. 2018 (TADAM) and Mishra et al. 2018: four :class:`ResidualBlock` of 64, 160, 320 and
    640 filters. The last block's maps are flattened (MetaOptNet's ``avg_pool=False``): 640x5x5 = 16,000
    features at 84 px, 640x2x2 = 2,560 at 32 px.

    Deviation: MetaOptNet regularises the last two blocks with DropBlock (Ghiasi et al. 2018; rate 0.1); this
    network has none.

    ``track_running_stats=False`` gives the batch norm of gradient-based meta-learners, which normalises with
    the statistics of the batch it is given, at test time too (transductive), as :class:`MAMLConv4` does.
    ``features_with(params, x)`` is the network as a pure function of explicit parameters (named like
    ``named_parameters()``, after ``prefix``), for inner loops that differentiate through adapted weights;
    ``forward`` runs the modules themselves (a test holds the two equal). Four
    ``blocks`` like :class:`Conv4`, so partly frozen fine-tuning cuts it alike.
    """

    widths = (64, 160, 320, 640)

    def __init__(self, in_channels: int = 3, track_running_stats: bool = True):
        super().__init__()
        ins = (in_channels, *self.widths[:-1])
        self.blocks = nn.Sequential(*[ResidualBlock(i, w, track_running_stats) for i, w in zip(ins, self.widths)])
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)

    def features(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run blocks ``start..stop`` only (the rest of a partly frozen network); flattened after the last."""
        stop = len(self.blocks) if stop is None else stop
        for block in self.blocks[start:stop]:
            x = block(x)
        return x.flatten(1) if stop == len(self.blocks) else x

    def features_with(self, params: dict[str, torch.Tensor], x: torch.Tensor, prefix: str = "") -> torch.Tensor:
        for b, block in enumerate(self.blocks):
            assert isinstance(block, ResidualBlock)
            x = block.forward_with(params, x, f"{prefix}blocks.{b}.")
        return x.flatten(1)

    @staticmethod
    def output_dim(image_shape: tuple[int, ...]) -> int:
        side = image_shape[-1]
        for _ in ResNet12.widths:
            side //= 2
        if side < 1:
            raise FewshotError(
                f"ResNet-12 halves the image four times: {image_shape[-1]} px is too small (16 at least)"
            )
        return ResNet12.widths[-1] * side * side


NETWORKS = ("conv4", "resnet12", "lenet", "lenet-bn")


def make_backbone(
    network: str, image_shape: tuple[int, ...], hidden: int = 64, pixel_mean: tuple[float, ...] = ()
) -> tuple[Conv4 | ResNet12 | LeNet, int]:
    """A backbone and its output width: Conv-4 (``hidden`` filters), ResNet-12, the digit LeNet, or LeNet with
    batch norm; the LeNets subtract ``pixel_mean`` from their input where it is given."""
    if network in ("lenet", "lenet-bn"):
        net = LeNet(image_shape[0], image_shape[-1], batch_norm=network == "lenet-bn", pixel_mean=pixel_mean)
        return net, net.output_features
    if network == "resnet12":
        return ResNet12(image_shape[0]), ResNet12.output_dim(image_shape)
    if network != "conv4":
        raise FewshotError(f"unknown network {network!r}: choose one of {', '.join(NETWORKS)}")
    return Conv4(image_shape[0], hidden), Conv4.output_dim(image_shape, hidden)


class MAMLConv4(nn.Module):
    """Finn et al.'s Omniglot network: four blocks of 3x3 convolution with 64 filters
    and stride 2 (no pooling; ``pool=True`` gives the max-pooled variant), batch norm
    and ReLU, then a linear layer to the ``ways`` logits.

    Batch norm keeps no running statistics, so it always normalises with the
    statistics of the batch it is given, in training and at test time, as in the
    paper's code: classifying a query batch is transductive.

    Gradient-based meta-learners call ``forward_with(params, x)``: a pure
    function of explicit parameters (named like ``named_parameters()``). It
    never touches the module's own tensors, unlike ``torch.func.functional_call``
    which swaps them in and out, so several tasks can run it at once on threads.
    """

    def __init__(self, image_shape: tuple[int, ...], ways: int, hidden: int = 64, pool: bool = False):
        super().__init__()
        blocks, channels = [], image_shape[0]
        for _ in range(4):
            if pool:
                blocks += [
                    nn.Conv2d(channels, hidden, 3, padding=1),
                    nn.BatchNorm2d(hidden, track_running_stats=False),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                ]
            else:
                blocks += [
                    nn.Conv2d(channels, hidden, 3, stride=2, padding=1),
                    nn.BatchNorm2d(hidden, track_running_stats=False),
                    nn.ReLU(),
                ]
            channels = hidden
        self.body = nn.Sequential(*blocks, nn.Flatten())
        with torch.no_grad():
            features = self.body(torch.zeros(2, *image_shape)).shape[1]
        self.head = nn.Linear(features, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(dict(self.named_parameters()), x)

    def forward_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return head_with(params, self.features_with(params, x), "head.")

    # From this many images (a query set, say) the first convolution runs as one matrix product whose
    # output is channels-last, and the later layers follow in that layout: MAML's meta-training step
    # on 5-way 15-query tasks ran 1.05-1.2x faster that way on 2-core CPUs (benchmarks/maml_speed.py);
    # on a few images the plain layout was as fast or faster.
    large_batch = 32

    def features_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.body):
            name = f"body.{i}."
            if isinstance(layer, nn.Conv2d) and i == 0 and x.shape[0] >= self.large_batch:
                x = conv_as_matmul(x, params[name + "weight"], params[name + "bias"], layer)
            elif isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, params[name + "weight"], params[name + "bias"], layer.stride, layer.padding)
            elif isinstance(layer, nn.BatchNorm2d):
                x = F.batch_norm(x, None, None, params[name + "weight"], params[name + "bias"], True, 0.0, layer.eps)
            elif isinstance(layer, nn.ReLU):
                x = F.relu(x)
            elif isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, 2)
            else:
                x = x.flatten(1)
        return x


class MAMLResNet12(nn.Module):
    """:class:`ResNet12` with batch statistics only and a linear layer to the ``ways`` logits: the
    ``forward_with`` interface of :class:`MAMLConv4`, for gradient-based meta-learners on ResNet-12."""

    def __init__(self, image_shape: tuple[int, ...], ways: int):
        super().__init__()
        self.body = ResNet12(image_shape[0], track_running_stats=False)
        self.head = nn.Linear(ResNet12.output_dim(image_shape), ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(dict(self.named_parameters()), x)

    def forward_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return head_with(params, self.features_with(params, x), "head.")

    def features_with(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.body.features_with(params, x, "body.")


GRADIENT_BACKBONES = ("auto", "conv4", "resnet12")


def gradient_network(
    backbone: str, image_shape: tuple[int, ...], ways: int, hidden: int, pool: bool, network: str = "conv4"
) -> MAMLConv4 | MAMLResNet12:
    """The network of a gradient-based meta-learner. ``conv4``: :class:`MAMLConv4` with ``hidden`` filters,
    strided or ``pool``-ed. ``auto``: the paper's network for the images: on RGB images of a Conv-4 benchmark
    (``network``; miniImageNet and the other natural-image sets), Finn et al.'s MiniImagenet network, 32 filters
    with max-pooling ("to reduce overfitting", Finn et al. 2017, section 5.1); otherwise their Omniglot one,
    ``hidden`` and ``pool`` as given. ``resnet12``: :class:`MAMLResNet12`."""
    if backbone == "resnet12":
        return MAMLResNet12(image_shape, ways)
    if backbone == "auto" and image_shape[0] == 3 and network == "conv4":
        return MAMLConv4(image_shape, ways, 32, pool=True)
    return MAMLConv4(image_shape, ways, hidden, pool)


def conv_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, layer: nn.Conv2d) -> torch.Tensor:
    """``layer``'s convolution with these parameters as one matrix product over all output positions;
    the result is a channels-last view, the layout the next convolutions run fastest in."""
    n, _, height, width = x.shape
    assert isinstance(layer.padding, tuple), "conv_as_matmul needs numeric padding, not 'same' or 'valid'"
    out_h = (height + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
    out_w = (width + 2 * layer.padding[1] - layer.kernel_size[1]) // layer.stride[1] + 1
    columns = F.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)  # [N, C*k*k, H'*W']
    out = torch.addmm(bias, columns.transpose(1, 2).reshape(n * out_h * out_w, -1), weight.reshape(len(weight), -1).T)
    return out.reshape(n, out_h, out_w, -1).permute(0, 3, 1, 2)


def head_with(params: dict[str, torch.Tensor], features: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """A linear layer on explicit parameters ``{prefix}weight`` and ``{prefix}bias``."""
    return F.linear(features, params[prefix + "weight"], params[prefix + "bias"])
