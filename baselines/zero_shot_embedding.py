"""What the zero-shot learners share: an image embedding learned on the seen classes, heads fitted on it,
and queries scored against class descriptions alone.

The embedding is the fine-tuning baseline's (Chen et al. 2019): Conv-4 with a
linear classifier over the training split's classes, trained with
cross-entropy on batches of labelled images (Adam at 1e-3, batches of 64).
Training never sees a description, so it does not depend on ``--side``. On a
dataset of precomputed features (Xian et al.'s ResNet-101 features) there is
nothing to pretrain and the embedding is the identity.

Each learner then fits its head in ``prepare`` on the embedded training split
and its classes' descriptions, with the embedding fixed, and scores queries
with ``scores(features, descriptions)``. Features are standardised with the
training split's mean and deviation first. Support images, when an episode
has them, are ignored: these learners know every test class by its
description alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.backbones import Conv4
from fewshot.core.episode import Episode, LabelledImages
from fewshot.core.errors import FewshotError
from fewshot.core.learner import ImageBatches, Learner, TaskSpec, classification_step

EMBEDDING_HPARAMS = {"lr": 1e-3, "batch_size": 64, "hidden": 64}
EMBEDDING_RANGES = {"lr": "(0, 10]", "batch_size": "[1, 100000]", "hidden": "[1, 4096]"}
# The ranges of the hyperparameters of fit_linear's heads, for the learners that have them.
HEAD_RANGES = {"head_steps": "[1, 1000000]", "head_lr": "(0, 10]", "head_weight_decay": "[0, 10]"}


class ZeroShotLearner(Learner):
    family = "zero-shot"
    needs_support = False
    uses_support = False
    reads_sides: ClassVar[tuple[str, ...]] = ("attributes", "text")
    trains_on = ()
    default_budget = {"*": "3000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.pixels = len(task.image_shape) == 3
        if self.pixels:
            self.backbone = Conv4(task.image_shape[0], hp["hidden"])
            self.feature_dim = Conv4.output_dim(task.image_shape, hp["hidden"])
            self.classifier = nn.Linear(self.feature_dim, max(task.train_classes, 1))
            self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])
        else:
            self.feature_dim = task.image_shape[0]
        self.standardize: tuple[torch.Tensor, torch.Tensor] | None = None

    def train_batches(self) -> ImageBatches | None:
        return ImageBatches(self.hp["batch_size"]) if self.pixels else None

    def train_step(self, batch: LabelledImages) -> dict[str, float]:
        return classification_step(self.optimizer, lambda x: self.classifier(self.backbone(x)), batch)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) if self.pixels else x

    def prepare(self, train: LabelledImages, side: torch.Tensor) -> None:
        mean, std = train.x.mean(0), train.x.std(0).clamp_min(1e-6)
        self.standardize = (mean, std)
        self.fit(LabelledImages((train.x - mean) / std, train.y), side)

    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        if episode.side is None:
            raise FewshotError(f"{type(self).__name__} needs episodes that carry class descriptions (side)")
        if self.standardize is None:
            raise FewshotError(
                f"{type(self).__name__} was not prepared: its head is fitted by `prepare` before "
                f"evaluation (fewshot.run.experiment.evaluate_setup does it)"
            )
        mean, std = self.standardize
        with torch.no_grad():
            return self.scores((episode.query_x - mean) / std, episode.side)

    def fit(self, train: LabelledImages, side: torch.Tensor) -> None:
        raise FewshotError(f"{type(self).__name__} must define fit: its head, fitted on the embedded training split")

    def scores(self, features: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        raise FewshotError(f"{type(self).__name__} must define scores: features against descriptions")


def unit_rows(side: torch.Tensor) -> torch.Tensor:
    return F.normalize(side.float(), dim=1, eps=1e-8)


def fit_linear(
    x: torch.Tensor,
    out_features: int,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch: int = 256,
    bias: bool = True,
    seed: int = 0,
    outputs: Callable[[nn.Linear, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Linear:
    """A linear map from features to ``out_features`` trained by ``steps`` Adam steps on ``loss(outputs, labels)``
    over seeded mini-batches, epoch after epoch (the heads of DeViSE, DAP, and ConSE's classifier on given
    features). Steps rather than epochs, so that a small training split is fitted as well as a large one.
    ``outputs(layer, x)`` replaces ``layer(x)`` as what ``loss`` reads (DeViSE's scores against every class)."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x.shape[1], out_features, bias=bias).to(x.device)
    bound = 1 / math.sqrt(x.shape[1])
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
        if bias:
            layer.bias.zero_()
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    batch = min(batch, len(y))
    per_epoch = len(y) // batch  # whole batches only: every step sees as many images
    with torch.enable_grad():
        for step in range(steps):
            if step % per_epoch == 0:
                order = torch.randperm(len(y), generator=generator).to(x.device)
            rows = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
            optimizer.zero_grad()
            loss(layer(x[rows]) if outputs is None else outputs(layer, x[rows]), y[rows]).backward()
            optimizer.step()
    layer.requires_grad_(False)
    return layer


def hparams_with_embedding(own: dict[str, Any]) -> dict[str, Any]:
    return {**EMBEDDING_HPARAMS, **own}


def ranges_with_embedding(own: dict[str, str], hparams: dict[str, Any]) -> dict[str, str]:
    """The embedding's ranges, those of the head hyperparameters ``hparams`` has, and the learner's ``own``."""
    return {**EMBEDDING_RANGES, **{k: v for k, v in HEAD_RANGES.items() if k in hparams}, **own}
