"""The interface of a domain adaptation method, and the mathematics several methods share.

An adaptation is a modifier of a learner's training, never a copy of a
learner (``--adapt METHOD``). It sees the backbone features of a labelled
source batch and an unlabelled target batch, passed through the backbone
together, and returns a loss added to the learner's own
(``fewshot.run.adapted`` does the wiring); or it changes the backbone's
normalisation (AdaBN, AutoDIAL). It never branches on the learner.

A method declares, like a learner, its ``paper``, ``hparams`` (defaults,
overridden with ``--hp METHOD.NAME=VALUE``) and their ``hparam_ranges``, and registers under the
``fewshot.adaptations`` entry-point group, so a third-party method plugs in
exactly like a built-in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Features:
    """One domain's share of a training batch: the backbone's output and, where the learner has a classifier
    over its training classes (``learner.head``), its logits. ``labels`` only for the few labelled target
    images some methods are given (``--target-labels``) and for the source batch of image-batch learners."""

    output: torch.Tensor  # [n, D]
    logits: torch.Tensor | None = None  # [n, classes]
    labels: torch.Tensor | None = None
    # The output of the backbone's convolutional feature extractor (Ganin et al.'s G_f), flattened, where the
    # backbone marks one (``extractor_end``: the digit LeNet's convolutions); else None.
    extracted: torch.Tensor | None = None


class Adaptation(nn.Module):
    paper: ClassVar[str] = ""
    hparams: ClassVar[Mapping[str, Any]] = {}
    hparam_choices: ClassVar[Mapping[str, tuple]] = {}
    hparam_ranges: ClassVar[Mapping[str, str]] = {}  # as a learner's: name -> "[0, 1000]"
    chosen_on: ClassVar[Mapping[str, str]] = {}  # as a learner's: defaults chosen on validation data, and how
    # False for methods that leave training alone (AdaBN): they reuse the source-only checkpoint.
    changes_training: ClassVar[bool] = True
    # Methods whose loss reads the classifier's outputs need a learner with a head over its training classes.
    needs_head: ClassVar[bool] = False
    # Methods that use a few labelled target images (``--target-labels N``) when given them.
    uses_target_labels: ClassVar[bool] = False
    # Methods that change how a test episode is normalised from its own images (transductive).
    transductive: ClassVar[bool] = False
    # How the method meets evaluation, where that differs from the learner's (the leaderboard shows it).
    protocol_note: ClassVar[str] = ""

    def __init__(self, features: int, classes: int, hp: Mapping[str, Any], horizon: int, extracted: int = 0):
        super().__init__()
        self.features, self.classes, self.hp, self.horizon = features, classes, dict(hp), horizon
        self.extracted = extracted  # width of Features.extracted, 0 where the backbone marks no extractor

    def attach(self, backbone: nn.Module) -> None:
        """Change the backbone before training (AutoDIAL swaps its batch norm for alignment layers)."""

    def begin_batch(self, split: tuple[int, int] | None) -> None:
        """Told before the backbone runs on a joined batch: (source rows, target rows) come first, in that
        order (labelled target rows, if any, after them); ``None`` once it has run."""

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        """The adaptation loss of one step; ``progress`` is the fraction of training done, in [0, 1];
        ``labelled``: the few labelled target images of ``--target-labels``, if given."""
        return source.output.new_zeros(())

    def lr_factor(self, progress: float) -> float:
        """Multiplies the learner's learning rates at this point of training (DANN's annealing)."""
        return 1.0

    def before_evaluation(self, backbone: nn.Module, target_batches: Iterator[torch.Tensor]) -> None:
        """Called once before the test evaluation with batches of unlabelled target training images."""

    def normalise_episode(self, backbone: nn.Module, images: torch.Tensor):
        """A context in which ``backbone`` is normalised for one test episode of ``images`` (transductive methods)."""
        return nullcontext()


# -- shared mathematics ----------------------------------------------------------------------------


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Ganin and Lempitsky's gradient reversal layer: the identity forward, the gradient times ``-scale`` backward."""
    return _ReverseGradient.apply(x, scale)


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """The adaptation weight schedule of Ganin et al. 2016: 2 / (1 + exp(-gamma p)) - 1, from 0 towards 1."""
    return 2.0 / (1.0 + torch.exp(torch.tensor(-gamma * progress)).item()) - 1.0


def warmup(schedule: str, progress: float) -> float:
    """An adaptation weight's factor at ``progress``: Ganin et al.'s rise from 0 to 1 ("ganin"), or 1 ("none")."""
    return ganin_lambda(progress) if schedule == "ganin" else 1.0


def gaussian_kernel_mean(x: torch.Tensor, y: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """Mean over ``bandwidths`` (variances) of Gaussian kernels exp(-|x_i - y_j|^2 / (2 s)), [len(x), len(y)]:
    Long et al.'s multi-kernel, a convex combination of the family, here with equal weights."""
    distances = torch.cdist(x, y).pow(2)
    return torch.exp(-distances.unsqueeze(0) / (2 * bandwidths.view(-1, 1, 1))).mean(0)


def kernel_family(source: torch.Tensor, target: torch.Tensor, kernels: int, multiplier: float) -> torch.Tensor:
    """Long et al.'s family of Gaussian kernels: variances ``base * multiplier^k``, k centred on 0, with ``base``
    the mean squared distance between the pooled samples (detached: the bandwidth is not trained)."""
    pooled = torch.cat([source, target]).detach()
    n = len(pooled)
    base = torch.cdist(pooled, pooled).pow(2).sum() / max(n * n - n, 1)
    powers = torch.arange(kernels, dtype=pooled.dtype, device=pooled.device) - kernels // 2
    return base.clamp_min(1e-12) * multiplier**powers


def mmd(source: torch.Tensor, target: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """The biased (V-statistic) estimate of squared MMD with the multi-kernel of ``bandwidths``."""
    return joint_mmd([source], [target], [bandwidths])


def joint_mmd(sources: list[torch.Tensor], targets: list[torch.Tensor], bandwidths: list[torch.Tensor]) -> torch.Tensor:
    """Squared MMD under the product of one kernel per layer (Long et al. 2017's joint MMD; one layer: plain MMD)."""
    k_ss: torch.Tensor | float = 1.0
    k_tt: torch.Tensor | float = 1.0
    k_st: torch.Tensor | float = 1.0
    for source, target, widths in zip(sources, targets, bandwidths):
        k_ss = k_ss * gaussian_kernel_mean(source, source, widths)
        k_tt = k_tt * gaussian_kernel_mean(target, target, widths)
        k_st = k_st * gaussian_kernel_mean(source, target, widths)
    assert isinstance(k_ss, torch.Tensor) and isinstance(k_tt, torch.Tensor) and isinstance(k_st, torch.Tensor), (
        "joint_mmd needs at least one layer"
    )
    return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()


def linear_mmd(source: torch.Tensor, target: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """Long et al. 2015's unbiased linear-time estimate of squared MK-MMD: over quad-tuples
    z_i = (s_2i-1, s_2i, t_2i-1, t_2i), the mean of k(s_2i-1, s_2i) + k(t_2i-1, t_2i) - k(s_2i-1, t_2i) -
    k(s_2i, t_2i-1), with the multi-kernel of ``bandwidths`` (the batches are cut to a common even size)."""
    n = min(len(source), len(target)) // 2 * 2
    s1, s2, t1, t2 = source[0:n:2], source[1:n:2], target[0:n:2], target[1:n:2]

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # row by row, not all pairs
        distances = (a - b).pow(2).sum(1)
        return torch.exp(-distances.unsqueeze(0) / (2 * bandwidths.view(-1, 1))).mean(0)

    return (kernel(s1, s2) + kernel(t1, t2) - kernel(s1, t2) - kernel(s2, t1)).mean()


def coral(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sun and Saenko's CORAL loss: |C_S - C_T|_F^2 / (4 d^2) of the feature covariances."""
    d = source.shape[1]
    return (torch.cov(source.T) - torch.cov(target.T)).pow(2).sum() / (4 * d * d)


class DomainClassifier(nn.Module):
    """A small network telling source (0) from target (1) features: Ganin et al.'s 100-unit hidden layer."""

    def __init__(self, features: int, hidden: int = 100, outputs: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def domain_labels(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.cat([source.new_zeros(len(source)), source.new_ones(len(target))])


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the predicted class distributions."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()
