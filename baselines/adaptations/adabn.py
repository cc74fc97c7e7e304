"""AdaBN: Li, Wang, Shi, Liu and Hou 2016, "Revisiting Batch Normalization For Practical Domain
Adaptation", arXiv:1603.04779 (ICLR workshop 2017).

Training is left alone (the source-only network, the same checkpoint). Before
evaluation every batch-norm layer's statistics are recomputed on the target
domain: the mean and variance of each unit over all unlabelled target training
images, so the target is normalised by its own statistics as the source was by
its own.

In few-shot episodes on a target domain the statistics come from each test
episode's own images (support and queries), then the network's are restored:
the classification of a query depends on the other queries of its episode
(transductive), as the leaderboard's protocol column says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fewshot.core.adaptation import Adaptation


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def running_statistics(norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tracking batch norm's running mean, running variance and batch count (the buffers AdaBN recomputes)."""
    mean, var, tracked = norm.running_mean, norm.running_var, norm.num_batches_tracked
    assert mean is not None and var is not None and tracked is not None, "batch_norms keeps only tracking layers"
    return mean, var, tracked


@torch.no_grad()
def recompute_statistics(backbone: nn.Module, batches: Iterator[torch.Tensor]) -> None:
    """Every batch-norm layer's running mean and variance, set to the statistics of all the images in ``batches``
    (a cumulative average over the batches); the parameters are untouched."""
    norms = batch_norms(backbone)
    if not norms:
        raise ValueError("AdaBN needs a network with batch norm")
    momenta = [m.momentum for m in norms]
    was_training = backbone.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the mean over all batches
    backbone.train()
    try:
        for x in batches:
            backbone(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        backbone.train(was_training)


class AdaBN(Adaptation):
    paper = "Li et al. 2016, Revisiting Batch Normalization For Practical Domain Adaptation (AdaBN)"
    hparams = {}
    changes_training = False
    transductive = True
    protocol_note = "AdaBN: batch-norm statistics of the target images (per test episode: transductive)"

    def attach(self, backbone: nn.Module) -> None:
        if not batch_norms(backbone):
            raise ValueError(
                "AdaBN recomputes batch-norm statistics and this network has none: choose one with "
                "batch norm (finetune on digits: --hp backbone=lenet-bn)"
            )

    def before_evaluation(self, backbone: nn.Module, target_batches: Iterator[torch.Tensor]) -> None:
        recompute_statistics(backbone, target_batches)

    @contextmanager
    def normalise_episode(self, backbone: nn.Module, images: torch.Tensor):
        saved = [tuple(buffer.clone() for buffer in running_statistics(m)) for m in batch_norms(backbone)]
        recompute_statistics(backbone, iter([images]))
        try:
            yield
        finally:
            for m, buffers in zip(batch_norms(backbone), saved):
                for buffer, value in zip(running_statistics(m), buffers):
                    buffer.copy_(value)
