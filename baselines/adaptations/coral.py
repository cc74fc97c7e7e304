"""Deep CORAL: Sun and Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
ECCV workshops.

The squared Frobenius distance between the covariance matrices of source and
target activations, divided by 4 d^2, on the last layer (the classifier's
logits, fc8 in the paper), added to the classification loss with weight
lambda. Learners without a classifier of their training classes align the
backbone's output instead.
"""

from __future__ import annotations

import torch

from fewshot.core.adaptation import Adaptation, Features, coral


class DeepCORAL(Adaptation):
    paper = "Sun and Saenko 2016, Deep CORAL: Correlation Alignment for Deep Domain Adaptation"
    hparams = {"weight": 1.0}
    hparam_ranges = {"weight": "[0, 1000]"}

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        if source.logits is not None:
            assert target.logits is not None, "both domains pass through the same backbone and head"
            return self.hp["weight"] * coral(source.logits, target.logits)
        return self.hp["weight"] * coral(source.output, target.output)
