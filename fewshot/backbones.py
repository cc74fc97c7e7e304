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
from torch import nn


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
    def output_dim(image_shape: tuple[int, int, int], hidden: int = 64, depth: int = 4) -> int:
        with torch.no_grad():
            return Conv4(image_shape[0], hidden, depth).eval()(torch.zeros(1, *image_shape)).shape[1]
