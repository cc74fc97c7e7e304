"""LSTM optimiser: Andrychowicz, Denil, Gomez, Hoffman, Pfau, Schaul, Shillingford
and de Freitas 2016, "Learning to learn by gradient descent by gradient
descent", NeurIPS.

A two-layer LSTM (20 units) predicts each parameter's update from its gradient:
``theta_{t+1} = theta_t + 0.1 * W h_t``, the LSTM reading the gradient after
the paper's preprocessing (``preprocess``: ``(log|g| / 10, sign g)``, or
``(-1, e^10 g)`` for tiny gradients). It is coordinatewise: one set of LSTM
weights shared by every parameter of the classifier, each parameter with its
own hidden state. The optimiser is meta-trained by unrolling the optimisation
and backpropagating the losses along the trajectory (weight 1 at every step),
truncated every ``unroll`` steps (truncated backpropagation through time, the
LSTM's weights updated by Adam after each truncation); the gradients fed to it
are constants, as in the paper (no second derivatives). It is then used to
train the classifier on each episode's support set for ``inner_steps`` updates
(10, in training and at test time; two truncations of 5).

Cost: the LSTM runs over all 28,485 coordinates of the classifier at every
update, so a meta-step (one episode, 10 updates, 5 queries per class scored
after each) takes about 1.1 s on one CPU core; the Omniglot default budget is
2,000 meta-steps (about 40 minutes). The paper's 100-step horizons with 20-step
truncations are ``--hp inner_steps=100 --hp unroll=20``.

Here the optimisee is an episode's classifier: Ravi & Larochelle's network
(four 3x3 convolution blocks, 32 filters, batch norm on batch statistics, ReLU,
2x2 max-pooling) trained on the support set. Deviations, for the few-shot
setting: (1) the losses summed along the trajectory are the classifier's losses
on the episode's queries (``objective=query``, the default; ``objective=support``
sums the support loss being optimised, the paper's choice), so the optimiser is
rewarded for what it generalises, not for memorising one image per class;
(2) every episode starts from one random initialisation of the classifier,
drawn once from the run's seed and kept in the checkpoint (the paper draws a
new optimisee per run), so SGD and Adam (``--hp update_rule=sgd`` or ``adam``)
can be compared with the learned optimiser from the very same start. Unlike
``metalstm`` the initialisation is not learned: what the optimiser achieves is
the update rule's alone.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.baselines.learned_optimizer import (
    CoordinatewiseLSTMCell,
    LearnedOptimizerLearner,
    detach_state,
    gradient_at,
    preprocess,
)
from fewshot.core.episode import Episode
from fewshot.core.learner import TaskSpec, clipped_step


class CoordinatewiseLSTM(nn.Module):
    """The paper's optimiser as an update rule (``fewshot.baselines.learned_optimizer``)."""

    def __init__(self, hidden: int = 20, layers: int = 2, output_scale: float = 0.1):
        super().__init__()
        self.cells = nn.ModuleList(CoordinatewiseLSTMCell(2 if i == 0 else hidden, hidden) for i in range(layers))
        self.out = nn.Linear(hidden, 1)
        self.output_scale = output_scale

    def start(self, theta: torch.Tensor):
        return tuple(cast(CoordinatewiseLSTMCell, cell).initial_state(theta) for cell in self.cells)

    def step(self, theta, loss, grad, state):
        x, new_state = preprocess(grad), []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        update = (self.out.weight @ x).squeeze(0) + self.out.bias
        return theta + self.output_scale * update, tuple(new_state)


class LSTMOptimizer(LearnedOptimizerLearner):
    paper = "Andrychowicz et al. 2016, Learning to learn by gradient descent by gradient descent"
    hparams = {
        **LearnedOptimizerLearner.hparams,
        "unroll": 5,
        "objective": "query",
        "train_queries": 5,
        "output_scale": 0.1,
    }
    hparam_choices = {**LearnedOptimizerLearner.hparam_choices, "objective": ("query", "support")}
    hparam_ranges = {**LearnedOptimizerLearner.hparam_ranges, "unroll": "[1, 10000]", "output_scale": "(0, 100]"}
    default_budget = {"glyphs": "1000steps", "omniglot": "2000steps", "*": "1000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        if hp["unroll"] < 1:
            raise ValueError("unroll must be at least 1 step")
        self.net.requires_grad_(False)  # the fixed random start of every episode
        self.update_lstm = CoordinatewiseLSTM(hp["lstm_hidden"], 2, hp["output_scale"])
        self.optimizer = torch.optim.Adam(self.update_lstm.parameters(), lr=hp["meta_lr"])

    def learned_rule(self) -> CoordinatewiseLSTM:
        return self.update_lstm

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        steps, unroll = self.hp["inner_steps"], self.hp["unroll"]
        loss_sum, correct = 0.0, 0.0
        for episode in batch:
            support_loss = self.loss_at(episode.support_x, episode.support_y)
            objective_x, objective_y = (
                (episode.query_x, episode.query_y)
                if self.hp["objective"] == "query"
                else (episode.support_x, episode.support_y)
            )
            theta = self.initial_parameters()
            state = self.update_lstm.start(theta)
            for start in range(0, steps, unroll):
                segment: torch.Tensor | float = 0.0
                for _ in range(min(unroll, steps - start)):
                    loss, grad = gradient_at(support_loss, theta)
                    theta, state = self.update_lstm.step(theta, loss, grad, state)
                    segment = segment + F.cross_entropy(self.logits(theta, objective_x), objective_y)
                assert isinstance(segment, torch.Tensor), "a segment unrolls at least one step"
                self.optimizer.zero_grad()
                (segment / steps).backward()
                clipped_step(self.optimizer, self.hp["grad_clip"])
                theta, state = theta.detach(), detach_state(state)
            with torch.no_grad():
                logits = self.logits(theta, episode.query_x)
            loss_sum += F.cross_entropy(logits, episode.query_y).item() / len(batch)
            correct += (logits.argmax(1) == episode.query_y).float().mean().item() / len(batch)
        return {"loss": loss_sum, "acc": correct}
