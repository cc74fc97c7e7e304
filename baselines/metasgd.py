"""Meta-SGD: Li, Zhou, Chen and Li 2017, "Meta-SGD: Learning to Learn Quickly for
Few-Shot Learning", arXiv:1707.09835.

MAML whose inner step size is learned too, one per parameter element: the
adapted parameters are ``theta - alpha * grad`` with ``alpha`` a tensor of the
shape of ``theta``, meta-learned with it by the outer loop (so it gets its
gradient through the inner step). As in the paper, one inner step at training
and at test time, and ``alpha`` starts uniform in [0.005, 0.1]. Network, meta-
batch, optimiser and transductive batch norm are ``maml``'s; see
``fewshot.baselines.maml``.

Deviations: the paper does not state its Omniglot meta-batch and iterations;
MAML's meta-batch is used. The default Omniglot budget is 3,000 meta-steps
(its learned step sizes make a step cost about twice MAML's on a CPU; 3,000 take
about 40 minutes on one core); ``--budget 60000steps`` is MAML's paper budget.
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.baselines.inner_loop import StepSizes
from fewshot.baselines.maml import MAML
from fewshot.core.learner import TaskSpec


class MetaSGD(MAML):
    paper = "Li et al. 2017, Meta-SGD: Learning to Learn Quickly for Few-Shot Learning"
    hparams = {
        **{k: v for k, v in MAML.hparams.items() if k != "inner_lr"},
        "inner_steps": 1,
        "test_steps": 1,
        "lr_init_low": 0.005,
        "lr_init_high": 0.1,
    }
    hparam_ranges = {
        **{k: v for k, v in MAML.hparam_ranges.items() if k != "inner_lr"},
        "lr_init_low": "[0, 10]",
        "lr_init_high": "[0, 10]",
    }
    default_budget = {**MAML.default_budget, "omniglot": "3000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        if not 0 <= hp["lr_init_low"] <= hp["lr_init_high"]:
            raise ValueError("lr_init_low and lr_init_high must satisfy 0 <= low <= high")
        # One learned step size per parameter element; keys mirror the network's parameter names.
        self.step_size = nn.ParameterDict(
            {
                name.replace(".", "_"): nn.Parameter(
                    torch.empty_like(p).uniform_(hp["lr_init_low"], hp["lr_init_high"])
                )
                for name, p in self.net.named_parameters()
            }
        )
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["meta_lr"])

    def step_sizes(self) -> StepSizes:
        return {name: self.step_size[name.replace(".", "_")] for name, _ in self.net.named_parameters()}
