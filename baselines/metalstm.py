"""Meta-learner LSTM: Ravi and Larochelle 2017, "Optimization as a Model for
Few-Shot Learning", ICLR.

A classifier (the learner) is trained on each episode's support set by an LSTM
(the meta-learner) whose cell state *is* the classifier's parameters. The
update of the cell state is a gradient step with learned, per-coordinate gates:

    theta_t = f_t * theta_{t-1} - i_t * grad_t
    i_t = sigmoid(W_I [h_t, theta_{t-1}, i_{t-1}] + b_I)    (the learning rate)
    f_t = sigmoid(W_F [h_t, theta_{t-1}, f_{t-1}] + b_F)    (shrinking the parameters)

where ``h_t`` is the hidden state of a first, ordinary LSTM layer (20 units)
that reads the preprocessed loss and gradient (``preprocess``, Andrychowicz
et al.'s formula). Both layers are coordinatewise: their weights are shared by
every parameter of the classifier, each of which has its own states. The
initial cell state, the classifier's initial parameters, is meta-learned too.
After ``inner_steps`` updates the classifier's loss on the queries is the
meta-loss; as in the paper, the gradients and losses fed to the meta-learner
are treated as constants (no second derivatives, ``gradient_at``). The forget
gate's bias starts large (f near 1) and the input gate's small, so the
meta-learner starts close to gradient descent with a small learning rate.
Batch norm uses batch statistics in training and at test time, as in the
paper. Adam at 1e-3, meta-gradient norm clipped to 0.25, one episode per update.

Deviations: the paper's figures are on miniImageNet (Ravi and Larochelle 2017,
Table 1: 5-way 1-shot 43.44%, 5-shot 60.60%), which this suite cannot ship; the classifier is its four 3x3
convolution blocks with 32 filters, batch norm, ReLU and 2x2 max-pooling, on
28x28 images. The number of updates (``inner_steps``, 10 by default) is the
same in training and at test time, on the whole support set each time.
With ``--hp update_rule=sgd`` (or ``adam``) the same learned initial
parameters are trained by a hand-written rule instead, for the comparison the
paper makes with fine-tuning.
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.baselines.learned_optimizer import CoordinatewiseLSTMCell, LearnedOptimizerLearner, preprocess
from fewshot.core.episode import Episode
from fewshot.core.learner import TaskSpec, query_loss_step


class MetaLSTMCell(nn.Module):
    """The second layer: its cell state is the classifier's parameters, its gates are per coordinate.

    ``W_F [h, theta, f]`` is computed as ``W_h h + w_theta theta + w_prev f``
    (the same product, without concatenating three tensors of every coordinate);
    row 0 is the forget gate, row 1 the input gate.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.weight_h = nn.Parameter(torch.empty(2, hidden).uniform_(-0.01, 0.01))
        self.weight_theta = nn.Parameter(torch.empty(2, 1).uniform_(-0.01, 0.01))
        self.weight_previous = nn.Parameter(torch.empty(2, 1).uniform_(-0.01, 0.01))
        # f near 1 and i near 0 at the start: close to gradient descent with a small step.
        self.bias = nn.Parameter(torch.stack([torch.empty(1).uniform_(4.0, 6.0), torch.empty(1).uniform_(-5.0, -4.0)]))

    def forward(self, h, theta, grad, gates):
        """New parameters [P] and gates [2, P] (forget, input) from the layer below's ``h`` [hidden, P]."""
        gates = torch.sigmoid(
            torch.addmm(self.bias, self.weight_h, h) + self.weight_theta * theta + self.weight_previous * gates
        )
        return gates[0] * theta - gates[1] * grad, gates


class MetaLearnerLSTM(nn.Module):
    """The two-layer coordinatewise meta-learner as an update rule (``fewshot.baselines.learned_optimizer``)."""

    def __init__(self, hidden: int = 20):
        super().__init__()
        self.lstm = CoordinatewiseLSTMCell(4, hidden)
        self.cell = MetaLSTMCell(hidden)

    def start(self, theta: torch.Tensor):
        return (*self.lstm.initial_state(theta), theta.new_zeros(2, len(theta)))

    def step(self, theta, loss, grad, state):
        h, c, gates = state
        inputs = torch.cat([preprocess(loss)[:, None].expand(2, len(grad)), preprocess(grad)])
        h, c = self.lstm(inputs, (h, c))
        theta, gates = self.cell(h, theta, grad, gates)
        return theta, (h, c, gates)


class MetaLSTM(LearnedOptimizerLearner):
    paper = "Ravi & Larochelle 2017, Optimization as a Model for Few-Shot Learning"
    default_budget = {"glyphs": "1000steps", "omniglot": "6000steps", "*": "2000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.meta_learner = MetaLearnerLSTM(hp["lstm_hidden"])
        # The classifier's own parameters are the learned initial cell state.
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["meta_lr"])

    def learned_rule(self) -> MetaLearnerLSTM:
        return self.meta_learner

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        def query_logits(episode: Episode) -> torch.Tensor:
            return self.logits(self.trajectory(episode, rule=self.meta_learner)[-1], episode.query_x)

        return query_loss_step(self.optimizer, batch, query_logits, max_grad_norm=self.hp["grad_clip"])
