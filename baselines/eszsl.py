"""ESZSL: Romera-Paredes and Torr 2015, "An embarrassingly simple approach to zero-shot learning", ICML.

A bilinear compatibility ``score(x, c) = x^T V s_c`` between image features x
(d) and class descriptions s_c (a), with V chosen in closed form. With the
training features X (d x m), their labels Y (m x z, +1 for the true class and
-1 elsewhere) and the training classes' descriptions S (a x z), V minimises

    ||X^T V S - Y||^2 + gamma ||V S||^2 + lam ||X^T V||^2 + gamma lam ||V||^2,

whose solution is V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lam I)^-1 (the
paper's eq. 6). A test image takes the class of highest score among the
episode's classes, described by descriptions never seen in training.

The two regularisers ``gamma`` and ``lam`` are chosen on the validation
classes from 10^-3 .. 10^3 when not fixed with ``--hp`` (Xian et al. 2018's
grid and protocol). Deviations: features are the Conv-4 embedding of the
seen classes (or the given ResNet features), standardised; descriptions are
L2-normalised per class.
"""

from __future__ import annotations

import torch

from fewshot.baselines.zero_shot_embedding import (
    ZeroShotLearner,
    hparams_with_embedding,
    ranges_with_embedding,
    unit_rows,
)
from fewshot.core.episode import LabelledImages

GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def eszsl_solution(
    features: torch.Tensor, labels: torch.Tensor, side: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """V (d x a) of the closed form, from features [m, d], class rows [m] and descriptions [z, a], in float64."""
    x, s = features.double(), side.double()
    # Y S^T without forming Y: row i is 2 s_{y_i} - sum_c s_c, since Y is +1 at the true class and -1 elsewhere
    ys = 2 * s[labels] - s.sum(0)
    left = torch.linalg.solve(x.T @ x + gamma * torch.eye(x.shape[1], dtype=x.dtype, device=x.device), x.T @ ys)
    right = s.T @ s + lam * torch.eye(s.shape[1], dtype=s.dtype, device=s.device)
    return torch.linalg.solve(right, left.T).T  # left @ right^-1, right being symmetric


class ESZSL(ZeroShotLearner):
    paper = "Romera-Paredes and Torr 2015, An embarrassingly simple approach to zero-shot learning"
    hparams = hparams_with_embedding({"gamma": 1.0, "lam": 1.0})
    hparam_ranges = ranges_with_embedding({"gamma": "(0, 1e6]", "lam": "(0, 1e6]"}, hparams)  # regularisers
    eval_hparams = frozenset({"gamma", "lam"})
    hparam_grid = {"gamma": GRID, "lam": GRID}

    def fit(self, train: LabelledImages, side: torch.Tensor) -> None:
        self.compatibility = eszsl_solution(train.x, train.y, unit_rows(side), self.hp["gamma"], self.hp["lam"]).float()

    def scores(self, features: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return features @ self.compatibility @ unit_rows(side).T
