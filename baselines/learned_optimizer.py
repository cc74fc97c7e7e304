"""What the learned optimisers share: a flat view of a network's parameters,
the gradient preprocessing of Andrychowicz et al. 2016, hand-written update
rules with the learned rules' interface, and the unrolled inner optimisation.

An update rule turns the parameters, the loss and its gradient into new
parameters: ``start(theta)`` gives its initial state and
``step(theta, loss, grad, state) -> (theta, state)`` one update, on the
network's parameters as one flat vector (the learned rules are coordinatewise:
one LSTM shared by every coordinate). ``SGD`` and ``Adam`` here are the
baselines the learned rules are compared with, on the same network, the same
start and the same number of steps.

Both papers ignore the second derivatives through the gradient inputs
(Ravi & Larochelle 2017, section 3.2; Andrychowicz et al. 2016, section 2.1):
``gradient_at`` takes the loss and gradient at a detached copy of the
parameters, so the meta-gradient flows through the chain of updates and the
rule's own outputs, never through the gradients the rule was given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.baselines.inner_loop import Params
from fewshot.core.backbones import MAMLConv4
from fewshot.core.episode import Episode
from fewshot.core.errors import FewshotError
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec

LossAt = Callable[[torch.Tensor], torch.Tensor]


class UpdateRule(Protocol):
    def start(self, theta: torch.Tensor) -> Any: ...

    def step(
        self, theta: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, state: Any
    ) -> tuple[torch.Tensor, Any]: ...


def preprocess(x: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """Andrychowicz et al. 2016, appendix A: each value becomes two,
    ``(log|x| / p, sign x)`` if ``|x| >= exp(-p)``, else ``(-1, exp(p) x)``,
    so inputs spanning many orders of magnitude reach the LSTM on one scale.
    The two are stacked on a new first axis: ``[2, *x.shape]``."""
    large = x.abs() >= math.exp(-p)
    magnitude = torch.where(large, x.abs().clamp_min(torch.finfo(x.dtype).tiny).log() / p, torch.full_like(x, -1.0))
    direction = torch.where(large, x.sign(), math.exp(p) * x)
    return torch.stack([magnitude, direction])


class FlatLayout:
    """The names and shapes of a parameter dict, to pass it as one vector and back."""

    def __init__(self, params: Params):
        self.names = list(params)
        self.shapes = [p.shape for p in params.values()]
        self.sizes = [p.numel() for p in params.values()]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def flatten(self, params: Params) -> torch.Tensor:
        return torch.cat([params[name].reshape(-1) for name in self.names])

    def unflatten(self, theta: torch.Tensor) -> Params:
        return {name: part.view(shape) for name, part, shape in zip(self.names, theta.split(self.sizes), self.shapes)}


def gradient_at(loss_at: LossAt, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss at ``theta`` and its gradient, both constants of the meta-graph (no second derivatives)."""
    with torch.enable_grad():
        point = theta.detach().requires_grad_()
        loss = loss_at(point)
        (grad,) = torch.autograd.grad(loss, point)
    return loss.detach(), grad


def optimise(loss_at: LossAt, theta: torch.Tensor, steps: int, rule: UpdateRule) -> list[torch.Tensor]:
    """``theta`` and the parameters after each of ``steps`` updates by ``rule`` (``steps + 1`` vectors)."""
    trajectory, state = [theta], rule.start(theta)
    for _ in range(steps):
        loss, grad = gradient_at(loss_at, theta)
        theta, state = rule.step(theta, loss, grad, state)
        trajectory.append(theta)
    return trajectory


class SGD:
    """Plain gradient descent with a fixed learning rate."""

    def __init__(self, lr: float):
        self.lr = lr

    def start(self, theta: torch.Tensor) -> None:
        return None

    def step(self, theta, loss, grad, state):
        return theta - self.lr * grad, state


class Adam:
    """Kingma & Ba 2015, with bias correction, as a functional rule."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps

    def start(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        return torch.zeros_like(theta), torch.zeros_like(theta), 0

    def step(self, theta, loss, grad, state):
        first, second, t = state
        beta1, beta2 = self.betas
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad.square()
        t += 1
        update = (first / (1 - beta1**t)) / ((second / (1 - beta2**t)).sqrt() + self.eps)
        return theta - self.lr * update, (first, second, t)


def hand_written_rule(name: str, lr: float) -> UpdateRule:
    return {"sgd": SGD, "adam": Adam}[name](lr)


class CoordinatewiseLSTMCell(nn.Module):
    """An LSTM cell run on every coordinate of a parameter vector at once, one
    set of weights shared by all. Inputs and states are laid out
    ``[features, coordinates]``, so that each gate is one contiguous block:
    the forward pass ran 1.4-1.8x faster on this CPU than ``nn.LSTMCell`` on
    ``[coordinates, features]`` (28,485 coordinates, 20 units)."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        bound = hidden**-0.5  # nn.LSTMCell's initialisation
        self.weight = nn.Parameter(torch.empty(4 * hidden, inputs + hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden).uniform_(-bound, bound))
        self.hidden = hidden

    def initial_state(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = theta.new_zeros(self.hidden, len(theta))
        return zeros, zeros

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = self.weight @ torch.cat([x, h])
        gates += self.bias[:, None]
        input_, forget, output = torch.sigmoid(gates[: 3 * self.hidden]).chunk(3)
        c = torch.addcmul(forget * c, input_, torch.tanh(gates[3 * self.hidden :]))
        return output * torch.tanh(c), c


def detach_state(state: Any) -> Any:
    """A rule's state cut from the meta-graph (truncated backpropagation through the unroll)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(part) for part in state)
    return state


class LearnedOptimizerLearner(Learner):
    """A learner whose adaptation to an episode is ``inner_steps`` updates of a
    classifier (``MAMLConv4``) on the support set by an update rule: its learned
    rule (``learned_rule``), or for comparison, with ``--hp update_rule=sgd`` or
    ``adam``, a hand-written one with ``baseline_lr`` from the same start.
    The start is ``initial_parameters``; the queries are classified with the
    updated parameters. Batch norm uses the statistics of the batch it is given
    (the support set while updating, the query set when classifying), as in
    Ravi & Larochelle's evaluation: transductive."""

    family = "learned-optimizer"
    hparams = {
        "inner_steps": 10,  # updates on the support set, in training and at test time
        "meta_lr": 1e-3,
        "grad_clip": 0.25,  # meta-gradient norm clip
        "train_queries": 15,
        "lstm_hidden": 20,
        "hidden": 32,  # the classifier's filters
        "pool": True,
        "update_rule": "lstm",
        "baseline_lr": 0.1,  # the hand-written rules' learning rate
    }
    hparam_choices = {"update_rule": ("lstm", "sgd", "adam")}
    hparam_ranges = {
        "inner_steps": "[1, 10000]",
        "meta_lr": "(0, 10]",
        "grad_clip": "(0, 1e6]",
        "train_queries": "[1, 10000]",
        "lstm_hidden": "[1, 4096]",
        "hidden": "[1, 4096]",
        "baseline_lr": "(0, 10]",
    }
    eval_hparams = frozenset({"update_rule", "baseline_lr"})
    protocol_note = "transductive: batch norm uses the statistics of the episode's query batch, as in the paper"
    transductive = True

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.net = MAMLConv4(task.image_shape, task.ways, hp["hidden"], hp["pool"])
        self.layout = FlatLayout(dict(self.net.named_parameters()))

    # -- what each learned optimiser defines ----------------------------------------------
    def learned_rule(self) -> UpdateRule:
        raise FewshotError(f"{type(self).__name__} must define learned_rule: the update rule it meta-learns")

    def initial_parameters(self) -> torch.Tensor:
        """The classifier's parameters before the first update, as one vector."""
        return self.layout.flatten(dict(self.net.named_parameters()))

    # -- shared ---------------------------------------------------------------------------
    def rule(self) -> UpdateRule:
        if self.hp["update_rule"] == "lstm":
            return self.learned_rule()
        return hand_written_rule(self.hp["update_rule"], self.hp["baseline_lr"])

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_with(self.layout.unflatten(theta), x)

    def loss_at(self, x: torch.Tensor, y: torch.Tensor) -> LossAt:
        return lambda theta: F.cross_entropy(self.logits(theta, x), y)

    def trajectory(
        self, episode: Episode, steps: int | None = None, rule: UpdateRule | None = None
    ) -> list[torch.Tensor]:
        """The classifier's parameters before and after each update on the episode's support set."""
        return optimise(
            self.loss_at(episode.support_x, episode.support_y),
            self.initial_parameters(),
            self.hp["inner_steps"] if steps is None else steps,
            rule or self.rule(),
        )

    def train_batches(self) -> EpisodeBatches:
        return EpisodeBatches(self.task.ways, self.task.shots, self.hp["train_queries"], 1)

    def predict(self, episode: Episode) -> torch.Tensor:
        with torch.no_grad():
            return self.logits(self.trajectory(episode)[-1], episode.query_x)
