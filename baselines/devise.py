"""DeViSE: Frome, Corrado, Shlens, Bengio, Dean, Ranzato and Mikolov 2013, "DeViSE: A Deep Visual-Semantic
Embedding Model", NeurIPS.

A linear map M takes image features f(x) into the space of class descriptions
g(y); the compatibility is ``f(x)^T M g(y)`` and a test image takes the class of
highest compatibility. M is trained with the paper's hinge rank loss

    sum over wrong classes y' of max(0, margin - f(x)^T M g(y) + f(x)^T M g(y'))

(``--hp rank=sum``, the paper's) or with the hardest wrong class alone
(``rank=max``), over the training classes, by mini-batch Adam on the fixed
embedding. Descriptions are L2-normalised per class, as the paper's word
vectors are. ``margin`` is chosen on the validation classes when not fixed
with ``--hp`` (Xian et al. 2018's protocol).

Deviations: the paper's visual model is an ImageNet CNN whose lower layers can
be fine-tuned afterwards; here it is the Conv-4 embedding of the seen classes
(or the given ResNet features), standardised, and stays fixed. Adam replaces
the paper's SGD.
"""

from __future__ import annotations

import torch

from fewshot.baselines.zero_shot_embedding import (
    ZeroShotLearner,
    fit_linear,
    hparams_with_embedding,
    ranges_with_embedding,
    unit_rows,
)
from fewshot.core.episode import LabelledImages


def hinge_rank_loss(scores: torch.Tensor, labels: torch.Tensor, margin: float, rank: str = "sum") -> torch.Tensor:
    """Mean over images of the hinge rank loss of ``scores [n, classes]`` (compatibilities with every class)."""
    true = scores.gather(1, labels[:, None])
    violations = (margin - true + scores).clamp_min(0)
    violations = violations.scatter(1, labels[:, None], 0.0)  # the true class is not a wrong class
    per_image = violations.sum(1) if rank == "sum" else violations.max(1).values
    return per_image.mean()


class DeViSE(ZeroShotLearner):
    paper = "Frome et al. 2013, DeViSE: A Deep Visual-Semantic Embedding Model"
    hparams = hparams_with_embedding(
        {"margin": 1.0, "rank": "sum", "head_steps": 2000, "head_lr": 1e-3, "head_weight_decay": 0.0}
    )
    hparam_choices = {"rank": ("sum", "max")}
    hparam_ranges = ranges_with_embedding({"margin": "[0, 1000]"}, hparams)
    eval_hparams = frozenset({"margin", "rank", "head_steps", "head_lr", "head_weight_decay"})
    hparam_grid = {"margin": (0.1, 0.5, 1.0, 2.0)}

    def fit(self, train: LabelledImages, side: torch.Tensor) -> None:
        described = unit_rows(side)
        loss = lambda scores, y: hinge_rank_loss(scores, y, self.hp["margin"], self.hp["rank"])  # noqa: E731
        # x (M S^T) rather than (x M) S^T: the same scores, far fewer operations when a batch outnumbers the features
        scores = lambda layer, x: x @ (layer.weight.T @ described.T)  # noqa: E731
        layer = fit_linear(
            train.x,
            described.shape[1],
            loss,
            train.y,
            steps=self.hp["head_steps"],
            lr=self.hp["head_lr"],
            weight_decay=self.hp["head_weight_decay"],
            bias=False,
            outputs=scores,
        )
        self.projection = layer.weight.detach().T  # [features, description dim]

    def scores(self, features: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return features @ self.projection @ unit_rows(side).T
