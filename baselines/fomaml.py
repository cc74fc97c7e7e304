"""First-order MAML: Finn, Abbeel and Levine 2017, "Model-Agnostic Meta-Learning
for Fast Adaptation of Deep Networks", ICML, section 5.2.

MAML with the second derivatives dropped: the inner-loop gradients are treated
as constants, so the meta-gradient is the query-loss gradient at the adapted
parameters, applied to the shared ones. Everything else (network, Omniglot
settings, transductive batch norm, deviations) is ``maml``'s; see
``fewshot.baselines.maml``.
"""

from __future__ import annotations

from fewshot.baselines.maml import MAML


class FOMAML(MAML):
    paper = "Finn et al. 2017, Model-Agnostic Meta-Learning (first-order approximation)"
    hparams = {**MAML.hparams, "first_order": True}
