"""AutoDIAL: Carlucci, Porzi, Caputo, Ricci and Rota Bulò 2017, "AutoDIAL: Automatic DomaIn Alignment
Layers", ICCV.

Every batch-norm layer of the backbone becomes a domain alignment layer (a
network without batch norm, such as the digit LeNet, gets one after every
convolution and fully connected layer, as the paper inserts them):
source and target activations, which pass through the network in one batch,
are normalised by statistics of their own domain mixed with the other's,

    mu_s,a = a mu_s + (1 - a) mu_t        mu_t,a = a mu_t + (1 - a) mu_s

(the variances those of the same mixtures), with the mixing weight ``a`` of
each layer learned and kept in [0.5, 1]: a = 1 normalises each domain
separately (AdaBN's end point), a = 0.5 both alike (plain batch norm). The
layer keeps running statistics of each domain; at test time target images are
normalised by the target's, mixed with weight ``a``. The unlabelled target
images also enter the loss through the entropy of their predicted class
distribution, weighted by ``entropy_weight``.

Deviations: ``a`` starts at 1 and is trained by the learner's optimiser
(a copy of its kind and settings); learners without a classifier of their training classes train
without the entropy term.

Measured (LeNet with inserted layers, 3,000 steps, three seeds on an H100;
target test accuracy, mean over seeds ± Student's t interval): the best method
of the suite on MNIST -> USPS (86.08 ± 2.54, runs 194, 193, 191) and USPS ->
MNIST (85.87 ± 6.25, runs 192, 196, 195), but below source-only on MNIST ->
MNIST-M (41.71 ± 18.60, runs 197, 198, 199, against 51.35 ± 1.79, runs 102,
103, 101). There the entropy term seemed to hurt: without it
(``--hp autodial.entropy_weight=0``) seed 0 came near AdaBN's level, and
raising it from 0 by Ganin et al.'s schedule did not help; both were judged on
the target test images and not recorded as runs, and issue 22 re-judges them
on validation.
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.core.adaptation import Adaptation, Features, entropy


class AlignmentLayer(nn.Module):
    """A batch-norm layer that normalises source and target rows of one batch by mixed domain statistics."""

    source_mean: torch.Tensor  # buffers
    source_var: torch.Tensor
    target_mean: torch.Tensor
    target_var: torch.Tensor

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm | int, alpha: float = 1.0):
        """Replaces the batch-norm layer ``norm`` (keeping its parameters and statistics), or, given a number
        of features, is a new layer with a unit scale and zero shift."""
        super().__init__()
        if isinstance(norm, int):
            norm = nn.BatchNorm1d(norm)
        self.weight, self.bias = norm.weight, norm.bias  # a replaced layer's parameters: its optimiser keeps them
        self.eps, self.momentum = norm.eps, norm.momentum or 0.1
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        features = norm.num_features
        for domain in ("source", "target"):
            self.register_buffer(
                f"{domain}_mean", norm.running_mean.clone() if norm.running_mean is not None else torch.zeros(features)
            )
            self.register_buffer(
                f"{domain}_var", norm.running_var.clone() if norm.running_var is not None else torch.ones(features)
            )
        self.split: tuple[int, int] | None = None

    def mixing(self) -> torch.Tensor:
        return self.alpha.clamp(0.5, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.mixing()
        if self.training and self.split is not None:
            sources = self.split[0]
            if 2 * sources == len(x):  # equal halves: one reduction for both domains, a fused backward
                return _AlignHalves.apply(
                    x.unflatten(0, (2, sources)), self, self.alpha, self.weight, self.bias
                ).flatten(0, 1)
            # target rows: the unlabelled ones, then any labelled ones
            flat = x.reshape(len(x), x.shape[1], -1)
            (mean_s, var_s), (mean_t, var_t) = moments(flat[:sources]), moments(flat[sources:])
            means, variances = torch.stack([mean_s, mean_t]), torch.stack([var_s, var_t])
            self._track(means, variances, (sources, len(x) - sources), x)
            scale, shift = affine(means, variances, a, self.weight, self.bias, self.eps)
            domain = (torch.arange(len(x), device=x.device) >= sources).long()
            return self._scale_shift(x, scale[domain], shift[domain])
        if self.training:  # a batch of one domain (source) outside the joined step
            mean, var = moments(x.reshape(len(x), x.shape[1], -1))
            scale, shift = affine(
                torch.stack([mean, mean]), torch.stack([var, var]), a, self.weight, self.bias, self.eps
            )
            return self._scale_shift(x, scale[:1], shift[:1])
        means = torch.stack([self.source_mean, self.target_mean])
        scale, shift = affine(
            means, torch.stack([self.source_var, self.target_var]), a, self.weight, self.bias, self.eps
        )
        return self._scale_shift(x, scale[1:], shift[1:])  # test images are target images

    @torch.no_grad()
    def _track(self, means: torch.Tensor, variances: torch.Tensor, rows: tuple[int, int], x: torch.Tensor) -> None:
        """Running statistics of each domain (variances unbiased, as batch norm keeps them)."""
        per_channel = x[0].numel() / x.shape[1]
        for i, domain in enumerate(("source", "target")):
            n = rows[i] * per_channel
            getattr(self, f"{domain}_mean").lerp_(means[i], self.momentum)
            getattr(self, f"{domain}_var").lerp_(variances[i] * n / max(n - 1, 1), self.momentum)

    @staticmethod
    def _scale_shift(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        shape = (len(scale), x.shape[1]) + (1,) * (x.dim() - 2)
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


class _AlignHalves(torch.autograd.Function):
    """An alignment layer on a batch of two equal halves (source, target), with a hand-written backward.

    Autograd through the statistics and the scale-and-shift makes about ten passes over the activations in
    backward and some sixty small operations per layer; this makes four passes. Forward: both halves'
    statistics, then y = x * scale_d + shift_d with each half's per-channel scale and shift from the mixed
    statistics. Backward: the gradients of scale and shift are two per-channel reductions, carried to the
    statistics, ``a``, the weight and the bias by the chain rule written out below (checked against
    autograd by gradcheck); the input's gradient dy * scale + dmean / n + 2 (x - mean) dvar / n is one
    fused expression.
    """

    @staticmethod
    def forward(ctx, halves, layer, alpha, weight, bias):
        means, variances = moments(halves.reshape(*halves.shape[:3], -1))
        layer._track(means, variances, (halves.shape[1], halves.shape[1]), halves.flatten(0, 1))
        a = alpha.clamp(0.5, 1.0)
        mean, var = mixed(means, variances, means.flip(0), variances.flip(0), a)
        inv_std = torch.rsqrt(var + layer.eps)
        scale = inv_std * weight
        shift = bias - mean * scale
        shape = (2, 1, halves.shape[2]) + (1,) * (halves.dim() - 3)
        ctx.save_for_backward(halves, means, variances, mean, inv_std, alpha, weight, bias)
        ctx.shape, ctx.eps = shape, layer.eps
        return torch.addcmul(shift.view(shape), halves, scale.view(shape))

    @staticmethod
    def backward(ctx, grad):
        halves, means, variances, mean, inv_std, alpha, weight, bias = ctx.saved_tensors
        if torch.is_grad_enabled():  # a derivative of this gradient is wanted (MAML's outer step): plain autograd
            inputs = (halves, alpha, weight, bias)
            grads = torch.autograd.grad(
                aligned_halves(halves, alpha, weight, bias, ctx.eps), inputs, grad, create_graph=True, allow_unused=True
            )
            return grads[0], None, *grads[1:]
        flat_grad, flat = grad.reshape(*grad.shape[:3], -1), halves.reshape(*halves.shape[:3], -1)
        grad_shift = flat_grad.sum(-1).sum(1)  # [domain, channel]
        grad_scale = torch.linalg.vecdot(flat_grad, flat).sum(1)
        scale = inv_std * weight
        # shift = bias - mean * scale, scale = weight / sqrt(var + eps)
        grad_scale_total = grad_scale - mean * grad_shift
        grad_mean = -scale * grad_shift
        grad_var = -0.5 * grad_scale_total * weight * inv_std**3
        # mean_d = m_o + a (m_d - m_o); var_d = v_o + a (v_d - v_o) + a (1 - a) (m_d - m_o)^2, o the other domain
        a = alpha.clamp(0.5, 1.0)
        apart = means - means.flip(0)
        d_means = a * grad_mean + (1 - a) * grad_mean.flip(0) + 2 * a * (1 - a) * apart * (grad_var + grad_var.flip(0))
        d_vars = a * grad_var + (1 - a) * grad_var.flip(0)
        d_a = (apart * grad_mean + (variances - variances.flip(0) + (1 - 2 * a) * apart.square()) * grad_var).sum()
        d_alpha = d_a * ((alpha >= 0.5) & (alpha <= 1.0))
        count = halves.numel() // (2 * halves.shape[2])
        k = (d_vars * (2.0 / count)).view(ctx.shape)
        d_input = torch.addcmul(d_means.view(ctx.shape) / count - k * means.view(ctx.shape), halves, k)
        d_input.addcmul_(grad, scale.view(ctx.shape))
        d_weight = (grad_scale_total * inv_std).sum(0)
        return d_input, None, d_alpha.to(alpha.dtype).reshape(alpha.shape), d_weight, grad_shift.sum(0)


def aligned_halves(
    halves: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """What :class:`_AlignHalves` computes, in differentiable operations (its reference and its second derivative)."""
    means, variances = moments(halves.reshape(*halves.shape[:3], -1))
    scale, shift = affine(means, variances, alpha.clamp(0.5, 1.0), weight, bias, eps)
    shape = (2, 1, halves.shape[2]) + (1,) * (halves.dim() - 3)
    return torch.addcmul(shift.view(shape), halves, scale.view(shape))


def moments(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of ``flat`` (..., images, channels, pixels), over the images and
    pixels. From sums of values and of squares: on a CPU, torch.var_mean over those dimensions took ten times
    as long as the convolution before it."""
    count = flat.shape[-3] * flat.shape[-1]
    mean = flat.sum(-1).sum(-2) / count
    return mean, (torch.linalg.vecdot(flat, flat).sum(-2) / count - mean.square()).clamp_min(0)


def affine(
    means: torch.Tensor, variances: torch.Tensor, a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per domain (rows: source, target), the scale and shift that normalise by the mixed statistics and
    apply the layer's own scale and shift."""
    mean, var = mixed(means, variances, means.flip(0), variances.flip(0), a)  # each domain with the other
    scale = torch.rsqrt(var + eps) * weight
    return scale, bias - mean * scale


def mixed(
    mean: torch.Tensor, var: torch.Tensor, other_mean: torch.Tensor, other_var: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the mixture a * (own domain) + (1 - a) * (other domain)."""
    apart = mean - other_mean
    return other_mean + a * apart, other_var + a * (var - other_var) + a * (1 - a) * apart.square()


class AutoDIAL(Adaptation):
    paper = "Carlucci et al. 2017, AutoDIAL: Automatic DomaIn Alignment Layers"
    hparams = {"entropy_weight": 0.1, "alpha": 1.0}
    hparam_ranges = {"entropy_weight": "[0, 1000]", "alpha": "[0.5, 1]"}  # alpha: the layers clamp it to [0.5, 1]

    def attach(self, backbone: nn.Module) -> None:
        """Batch-norm layers become alignment layers; a network without any gets one after every convolution
        and fully connected layer, as the paper inserts them into networks without batch norm."""
        self.layers: list[AlignmentLayer] = []
        for parent in list(backbone.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm):
                    if not child.affine:
                        raise ValueError("AutoDIAL needs batch norm layers with a scale and shift")
                    layer = AlignmentLayer(child, self.hp["alpha"])
                    setattr(parent, name, layer)
                    self.layers.append(layer)
        if self.layers:
            return
        for parent in list(backbone.modules()):
            if not isinstance(parent, nn.Sequential):
                continue
            for name, child in list(parent.named_children()):
                width = (
                    child.out_channels
                    if isinstance(child, nn.Conv2d)
                    else child.out_features
                    if isinstance(child, nn.Linear)
                    else None
                )
                if width is not None:
                    layer = AlignmentLayer(width, self.hp["alpha"])
                    setattr(parent, name, nn.Sequential(child, layer))
                    self.layers.append(layer)
        if not self.layers:
            raise ValueError("AutoDIAL found no batch norm, convolution or fully connected layer to align after")

    def begin_batch(self, split: tuple[int, int] | None) -> None:
        for layer in self.layers:
            layer.split = split

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        if target.logits is None:
            return source.output.new_zeros(())
        return self.hp["entropy_weight"] * entropy(target.logits)

    def mixing_weights(self) -> list[float]:
        return [float(layer.mixing().detach()) for layer in self.layers]
