"""ConSE: Norouzi, Mikolov, Bengio, Singer, Shlens, Frome, Corrado and Dean 2014, "Zero-Shot Learning by Convex
Combination of Semantic Embeddings", ICLR.

No training beyond a classifier of the seen classes: an image is embedded as
the convex combination of the descriptions of its T most probable training
classes, weighted by the classifier's probabilities,

    f(x) = 1/Z sum_{t=1..T} p(y_t | x) s(y_t),   Z = sum_{t=1..T} p(y_t | x),

and takes the class whose description is nearest by cosine similarity.

The classifier is the embedding's own softmax layer, trained with it on the
seen classes (as the paper uses its ImageNet CNN's); on given features it is a
softmax regression fitted in ``prepare``. ``top`` (T) is chosen on the
validation classes when not fixed with ``--hp``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.baselines.zero_shot_embedding import (
    ZeroShotLearner,
    fit_linear,
    hparams_with_embedding,
    ranges_with_embedding,
    unit_rows,
)
from fewshot.core.episode import LabelledImages


def convex_combination(probabilities: torch.Tensor, side: torch.Tensor, top: int) -> torch.Tensor:
    """Each row's probability-weighted mean of the descriptions of its ``top`` most probable classes."""
    weights, classes = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    weights = weights / weights.sum(1, keepdim=True)
    return torch.einsum("nt,ntd->nd", weights, side[classes])


class ConSE(ZeroShotLearner):
    paper = "Norouzi et al. 2014, Zero-Shot Learning by Convex Combination of Semantic Embeddings"
    hparams = hparams_with_embedding({"top": 10, "head_steps": 2000, "head_lr": 1e-3})
    hparam_ranges = ranges_with_embedding({"top": "[1, 100000]"}, hparams)
    eval_hparams = frozenset({"top", "head_steps", "head_lr"})
    hparam_grid = {"top": (1, 2, 5, 10, 20)}

    def fit(self, train: LabelledImages, side: torch.Tensor) -> None:
        self.seen_side = unit_rows(side)
        if self.pixels and self.classifier.out_features == len(side):
            assert self.standardize is not None, "prepare standardises the features before it fits"
            mean, std = self.standardize  # the pretrained layer reads unstandardised features x = z * std + mean
            weight = self.classifier.weight.detach()
            self.class_weight, self.class_bias = weight * std, self.classifier.bias.detach() + weight @ mean
            return
        layer = fit_linear(
            train.x,
            len(side),
            F.cross_entropy,
            train.y,
            steps=self.hp["head_steps"],
            lr=self.hp["head_lr"],
            weight_decay=0.0,
        )
        self.class_weight, self.class_bias = layer.weight.detach(), layer.bias.detach()

    def scores(self, features: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        probabilities = (features @ self.class_weight.T + self.class_bias).softmax(1)
        embedded = convex_combination(probabilities, self.seen_side, self.hp["top"])
        return F.normalize(embedded, dim=1, eps=1e-8) @ unit_rows(side).T
