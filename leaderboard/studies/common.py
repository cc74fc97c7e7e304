"""What the transfer and freeze studies share: a backbone with a linear classifier, its seeded training and scoring,
and the CSV and PNG each study writes.

Every network is trained with the optimiser of its backbone's papers (:func:`optimizer`) for a fixed number of
steps, all randomness seeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewshot.core.backbones import Conv4, LeNet, ResNet12, make_backbone
from fewshot.core.data import Benchmark, ClassImages, Split, atomic_write
from fewshot.core.learner import classification_step
from fewshot.core.sampler import ImageBatches, ImagePool
from fewshot.run.evaluation import predicted_classes

# Ganin & Lempitsky (2015) train their digit LeNet by SGD with momentum 0.9 at 0.01; every other backbone is
# trained by Adam at 1e-3, as Chen et al. (2019) pretrain theirs. These are the numbers the studies have always
# used, so their results do not change.
LENET_SGD: dict[str, Any] = {"lr": 0.01, "momentum": 0.9}
ADAM: dict[str, Any] = {"lr": 1e-3}


def optimizer(parameters: Iterable[nn.Parameter], network: str) -> torch.optim.Optimizer:
    """The optimiser of the backbone ``network``'s papers: :data:`LENET_SGD` for a LeNet, :data:`ADAM` otherwise."""
    if network.startswith("lenet"):
        return torch.optim.SGD(parameters, **LENET_SGD)
    return torch.optim.Adam(parameters, **ADAM)


@dataclass
class Network:
    backbone: Conv4 | ResNet12 | LeNet
    head: nn.Linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def parameters(self, frozen_blocks: int = 0) -> list[nn.Parameter]:
        tuned = [p for block in self.backbone.blocks[frozen_blocks:] for p in block.parameters()]
        return tuned + list(self.head.parameters())


def new_network(bench: Benchmark, classes: int, seed: int) -> Network:
    """The benchmark's backbone with a linear classifier over ``classes`` classes, initialised from ``seed``."""
    torch.manual_seed(seed)
    backbone, width = make_backbone(bench.network, bench.data.image_shape)
    return Network(backbone, nn.Linear(width, classes))


def train_network(
    net: Network,
    data: ClassImages,
    split: Split,
    steps: int,
    seed: int,
    network: str,
    frozen_blocks: int = 0,
    batch: int = 64,
) -> Network:
    """Cross-entropy training of the blocks after ``frozen_blocks`` and the head on ``split``'s images."""
    opt = optimizer(net.parameters(frozen_blocks), network)
    batches = ImageBatches(data, split, batch, seed)
    net.backbone.train()
    for block in net.backbone.blocks[:frozen_blocks]:
        block.eval()  # frozen blocks keep their batch-norm statistics as well as their weights
    for step in range(steps):
        classification_step(opt, net, batches[step])
    net.backbone.eval()
    return net


@torch.no_grad()
def accuracy(net: Network, data: ClassImages, split: Split, batch: int = 500) -> float:
    """The fraction of ``split``'s images whose class row the network predicts."""
    items, rows = ImagePool(data, split).items()
    net.backbone.eval()
    return float((predicted_classes(net, data, items, batch) == rows).mean())


def write_csv(path: Path, rows: list[dict]) -> None:
    """One line per row, the first row's keys as the header, accuracies to four decimals."""
    fields = list(rows[0])

    def write(f) -> None:
        text = [",".join(fields)]
        text += [",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in fields) for r in rows]
        f.write(("\n".join(text) + "\n").encode())

    atomic_write(path, write)


def pyplot():
    """matplotlib's pyplot on the Agg backend (imported only by the studies that draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    pyplot().close(fig)
