"""The functional inner loop shared by the gradient-based meta-learners.

MAML, first-order MAML, Meta-SGD and ANIL adapt a network to a support set by
a few steps of gradient descent on its loss, then score the queries with the
adapted parameters. Here that loop is written once, on parameters passed
explicitly as a ``{name: tensor}`` dict to a pure forward function
(``forward(params, x)``, such as ``MAMLConv4.forward_with``): the module is
never mutated, so the meta-parameters stay the leaves the outer optimiser
updates and several tasks can adapt at once.

* ``second_order=True`` keeps the graph of every inner gradient, so the query
  loss differentiates through the whole loop (MAML); with ``False`` the inner
  gradients are constants and the meta-gradient is the first-order one.
* ``step_sizes`` is one float for all parameters or a per-parameter dict of
  tensors (Meta-SGD's learned, elementwise learning rates).
* ``forward`` is whatever the loop adapts: ANIL passes the head alone, with
  the body's features as its input, so the body is computed once per episode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

Params = dict[str, torch.Tensor]
StepSizes = float | Mapping[str, torch.Tensor]
Forward = Callable[[Params, torch.Tensor], torch.Tensor]


def meta_parameters(module: nn.Module) -> Params:
    """The module's parameters as an explicit dict (the meta-parameters; gradients flow to them)."""
    return dict(module.named_parameters())


def detached_parameters(module: nn.Module) -> Params:
    """Copies that require grad but lead nowhere: adaptation at test time leaves no graph to the learner."""
    return {name: p.detach().requires_grad_() for name, p in module.named_parameters()}


def adapt(
    forward: Forward,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    step_sizes: StepSizes,
    *,
    second_order: bool,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(forward(params, x), y)``; returns new parameters."""
    with torch.enable_grad():
        for _ in range(steps):
            loss = loss_fn(forward(params, x), y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order)
            params = {
                name: p - (step_sizes if isinstance(step_sizes, float) else step_sizes[name]) * g
                for (name, p), g in zip(params.items(), grads)
            }
    return params
