"""ANIL: Raghu, Raghu, Bengio and Vinyals 2020, "Rapid Learning or Feature Reuse?
Towards Understanding the Effectiveness of MAML", ICLR.

Almost No Inner Loop: MAML whose inner loop adapts the head (the final linear
layer) only; the body's parameters are meta-learned by the outer loop and stay
fixed within an episode. The body is therefore run once per support set, and
the inner steps differentiate the head alone. Settings, network and batch norm
are ``maml``'s (the paper keeps MAML's hyperparameters); see
``fewshot.baselines.maml``. The default Omniglot budget is 3,000 meta-steps
(about 30 minutes on one core); ``--budget 60000steps`` is MAML's paper budget.
"""

from __future__ import annotations

from fewshot.baselines.inner_loop import Params, adapt
from fewshot.baselines.maml import MAML
from fewshot.core.backbones import head_with
from fewshot.core.episode import Episode


class ANIL(MAML):
    paper = "Raghu et al. 2020, Rapid Learning or Feature Reuse? Towards Understanding the Effectiveness of MAML"
    default_budget = {**MAML.default_budget, "omniglot": "3000steps"}

    def adapt_to(self, episode: Episode, params: Params, steps: int, second_order: bool) -> Params:
        head = {name[len("head.") :]: p for name, p in params.items() if name.startswith("head.")}
        features = self.net.features_with(params, episode.support_x)
        head = adapt(head_with, head, features, episode.support_y, steps, self.step_sizes(), second_order=second_order)
        return {**params, **{f"head.{name}": p for name, p in head.items()}}
