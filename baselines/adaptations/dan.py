"""DAN: Long, Cao, Wang and Jordan 2015, "Learning Transferable Features with Deep Adaptation Networks", ICML.

Multi-kernel MMD (a family of Gaussian kernels, variances spread by factors of
two around the mean squared distance of the pooled batch) between source and
target representations of several layers, summed: the backbone's output and
the classifier's logits (the paper adapts the last three fully connected
layers of AlexNet; the digit network has two hidden fully connected layers
and the classifier, and the backbone's output is the last hidden one).
Learners without a classifier of their training classes adapt the backbone's
output alone.

Deviations: the kernels are weighted equally (the paper learns the weights by
a quadratic program per step); MMD is by default the biased quadratic-time
estimate on the batch (``estimator`` linear: the paper's unbiased linear-time
one over quad-tuples, which is noisier); and its weight rises
from 0 to ``weight`` by Ganin et al.'s schedule (``warmup`` ganin; ``none``:
the paper's constant weight), because training here starts from a random
network, not a pretrained one. ``layers`` output+logits adapts the last hidden
layer and the logits, output the last hidden layer alone.
"""

from __future__ import annotations

import torch

from fewshot.core.adaptation import Adaptation, Features, kernel_family, linear_mmd, mmd, warmup


class DAN(Adaptation):
    paper = "Long et al. 2015, Learning Transferable Features with Deep Adaptation Networks"
    hparams = {
        "weight": 1.0,
        "kernels": 5,
        "multiplier": 2.0,
        "warmup": "ganin",
        "layers": "output+logits",
        "estimator": "quadratic",
    }
    hparam_ranges = {"weight": "[0, 1000]", "kernels": "[1, 64]", "multiplier": "(0, 100]"}
    # warmup none: the paper's constant weight from the first step; layers output: the last hidden layer alone;
    # estimator linear: the paper's unbiased linear-time estimate over quad-tuples
    hparam_choices = {
        "warmup": ("ganin", "none"),
        "layers": ("output+logits", "output"),
        "estimator": ("quadratic", "linear"),
    }

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        layers = [(source.output, target.output)]
        if source.logits is not None and self.hp["layers"] == "output+logits":
            assert target.logits is not None, "both domains pass through the same backbone and head"
            layers.append((source.logits, target.logits))
        estimate = linear_mmd if self.hp["estimator"] == "linear" else mmd
        total = sum(estimate(s, t, kernel_family(s, t, self.hp["kernels"], self.hp["multiplier"])) for s, t in layers)
        return self.hp["weight"] * warmup(self.hp["warmup"], progress) * total
