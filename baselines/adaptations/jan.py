"""JAN: Long, Zhu, Wang and Jordan 2017, "Deep Transfer Learning with Joint Adaptation Networks", ICML.

Joint MMD: the discrepancy between the joint distributions of the backbone's
features and the classifier's softmax outputs in the two domains, under the
product of a kernel on each (a family of five Gaussian kernels on the features,
one Gaussian of variance 1.68 on the softmax outputs, as in the authors'
code). Its weight rises from 0 to ``weight`` by Ganin et al.'s schedule, the
progressive training the paper uses (``warmup`` none: constant from the start).

Deviation: the biased quadratic-time estimate on the batch (the paper also
gives a linear-time one).
"""

from __future__ import annotations

import torch

from fewshot.core.adaptation import Adaptation, Features, joint_mmd, kernel_family, warmup


class JAN(Adaptation):
    paper = "Long et al. 2017, Deep Transfer Learning with Joint Adaptation Networks"
    hparams = {"weight": 1.0, "kernels": 5, "multiplier": 2.0, "softmax_variance": 1.68, "warmup": "ganin"}
    hparam_choices = {"warmup": ("ganin", "none")}  # none: a constant weight from the first step
    hparam_ranges = {
        "weight": "[0, 1000]",
        "kernels": "[1, 64]",
        "multiplier": "(0, 100]",
        "softmax_variance": "(0, 1e6]",
    }
    needs_head = True

    def loss(
        self, source: Features, target: Features, progress: float, labelled: Features | None = None
    ) -> torch.Tensor:
        assert source.logits is not None and target.logits is not None, "JAN needs the learner's head (needs_head)"
        features = kernel_family(source.output, target.output, self.hp["kernels"], self.hp["multiplier"])
        outputs = source.output.new_tensor([self.hp["softmax_variance"]])
        discrepancy = joint_mmd(
            [source.output, source.logits.softmax(1)], [target.output, target.logits.softmax(1)], [features, outputs]
        )
        return self.hp["weight"] * warmup(self.hp["warmup"], progress) * discrepancy
