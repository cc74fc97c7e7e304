"""DDC: Tzeng, Hoffman, Zhang, Saenko and Darrell 2014, "Deep Domain Confusion: Maximizing for Domain
Invariance", arXiv:1412.3474.

The maximum mean discrepancy between source and target representations on one
adaptation layer, added to the classification loss with weight lambda = 0.25
(the paper's choice). As in the paper, MMD is the squared distance between the
domains' mean representations (a linear kernel).

Deviation: the paper inserts a low-dimensional bottleneck as the adaptation
layer before the classifier; here the layer is the backbone's output, the one
before the learner's classifier (100 units in the digit network).
"""

from __future__ import annotations

import torch

from fewshot.core.adaptation import Adaptation, Features


class DDC(Adaptation):
    paper = "Tzeng et al. 2014, Deep Domain Confusion: Maximizing for Domain Invariance"
    hparams = {"weight": 0.25}
    hparam_ranges = {"weight": "[0, 1000]"}

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        return self.hp["weight"] * (source.output.mean(0) - target.output.mean(0)).pow(2).sum()
