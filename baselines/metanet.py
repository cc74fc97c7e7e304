"""Meta Networks (MetaNet): Munkhdalai and Yu 2017, "Meta Networks", ICML.

A base learner b and a meta learner whose fast weights are generated from
loss gradients on the support set (the paper's Algorithm 1):

1. Task-level fast weights of the representation function u: for T pairs of
   support images, the embedding loss is a same/different verification loss,
   P = sigmoid(v . |u(Q, x_a) - u(Q, x_b)|) with binary cross-entropy; its
   gradients with respect to u's slow weights Q go through an LSTM d (slow
   weights G), coordinate by coordinate, and its last output is Q*.
2. Example-level fast weights of the base learner: for each support image,
   the gradient of b's cross-entropy with respect to its slow weights W goes
   through an MLP m (slow weights Z), coordinate by coordinate, giving W*_i,
   stored in a memory M beside the key r'_i = u(Q, Q*, x'_i).
3. Each query x reads its fast weights from the memory,
   W*_x = sum_i softmax_i(cosine(u(Q, Q*, x), r'_i)) W*_i, and b(W, W*_x, x)
   classifies it. The slow weights (W, Q, Z, G and v) are trained end to end on
   the queries' cross-entropy, through the gradients of steps 1 and 2.

Layer augmentation as in the paper: an augmented layer sums the slow and the
fast weights' outputs, ReLU(W x) + ReLU(W* x) (without the ReLUs for the
base learner's output layer, whose outputs are logits). Gradients enter m and
d preprocessed as in Andrychowicz et al. 2016 (log-magnitude and sign, p = 10),
as the paper does.

Deviations: fast weights augment the last layer of each network (u's
embedding layer and b's output layer), on top of Conv-4 trunks with slow
weights only; the paper augments its networks' layers throughout. The
gradients fed to m and d are those of the augmented layers' slow weights.
Adam at 1e-3 for a fixed budget of episodes (the paper's optimiser settings
are not given in full): 30,000 on Omniglot, where 5-way 1-shot test accuracy
read 96.06 ± 0.38 after 10,000 (run 15), 96.66 ± 0.35 after 20,000 (run 17)
and 97.04 ± 0.33 after 30,000 (run 18). m has 20 hidden units in 2 layers, d
20 LSTM units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.backbones import Conv4
from fewshot.core.episode import Episode
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec, query_loss_step

GRADIENT_SCALE_P = 10.0


def preprocess_gradients(gradient: torch.Tensor, p: float = GRADIENT_SCALE_P) -> torch.Tensor:
    """Andrychowicz et al.'s coordinate-wise preprocessing: [..., 2] of (log|g|/p, sign g), or (-1, e^p g) when tiny."""
    magnitude = gradient.abs()
    large = magnitude >= math.exp(-p)
    first = torch.where(large, magnitude.clamp_min(math.exp(-p)).log() / p, torch.full_like(gradient, -1.0))
    second = torch.where(large, gradient.sign(), gradient * math.exp(p))
    return torch.stack([first, second], dim=-1)


class WeightGenerator(nn.Module):
    """m: an MLP from a preprocessed gradient coordinate to a fast-weight coordinate."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, gradients: torch.Tensor) -> torch.Tensor:
        return self.net(preprocess_gradients(gradients)).squeeze(-1)


class SequenceWeightGenerator(nn.Module):
    """d: an LSTM reading a sequence of gradients coordinate by coordinate; its last output is the fast weight."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, gradients: torch.Tensor) -> torch.Tensor:
        """``gradients`` [T, *shape] -> fast weights [*shape]."""
        shape = gradients.shape[1:]
        sequence = preprocess_gradients(gradients.reshape(gradients.shape[0], -1)).transpose(0, 1)  # [coords, T, 2]
        outputs, _ = self.lstm(sequence)
        return self.out(outputs[:, -1]).view(shape)


class MetaNet(Learner):
    family = "memory"
    paper = "Munkhdalai and Yu 2017, Meta Networks"
    hparams = {
        "lr": 1e-3,
        "hidden": 64,
        "generator_hidden": 20,
        "pairs": 4,  # T: support pairs for the task-level fast weights
        "train_queries": 5,
    }
    hparam_ranges = {
        "lr": "(0, 10]",
        "hidden": "[1, 4096]",
        "generator_hidden": "[1, 4096]",
        "pairs": "[1, 1000]",
        "train_queries": "[1, 10000]",
    }
    trains_on = ("ways", "shots")
    default_budget = {"glyphs": "1000steps", "omniglot": "30000steps", "*": "2000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        dim = Conv4.output_dim(task.image_shape, hp["hidden"])
        self.base_trunk = Conv4(task.image_shape[0], hp["hidden"])
        self.base_out = nn.Linear(dim, task.ways)  # W: slow weights of b's augmented output layer
        self.repr_trunk = Conv4(task.image_shape[0], hp["hidden"])
        self.repr_layer = nn.Linear(dim, dim)  # Q: slow weights of u's augmented embedding layer
        self.verify = nn.Linear(dim, 1)  # v: the embedding loss's same/different classifier
        self.m = WeightGenerator(hp["generator_hidden"])
        self.d = SequenceWeightGenerator(hp["generator_hidden"])
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])

    # -- the meta learner's representation u ------------------------------------------------
    def represent(self, features: torch.Tensor, fast: torch.Tensor | None) -> torch.Tensor:
        slow = F.relu(self.repr_layer(features))
        return slow if fast is None else slow + F.relu(features @ fast.T)

    def task_fast_weights(
        self, features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, create_graph: bool
    ) -> torch.Tensor:
        """Q* = d(G, {grad_Q L_emb(pair t)}) over T pairs of support images."""
        count = features.shape[0]
        if count < 2:
            return torch.zeros_like(self.repr_layer.weight)
        first = torch.randint(0, count, (self.hp["pairs"],), generator=generator)
        second = (first + torch.randint(1, count, (self.hp["pairs"],), generator=generator)) % count
        gradients = []
        for a, b in zip(first.tolist(), second.tolist()):
            r = self.represent(features[[a, b]], None)
            same = (labels[a] == labels[b]).to(r.dtype).view(1)
            loss = F.binary_cross_entropy_with_logits(self.verify((r[0] - r[1]).abs()).view(1), same)
            gradients.append(torch.autograd.grad(loss, self.repr_layer.weight, create_graph=create_graph)[0])
        return self.d(torch.stack(gradients))

    # -- the base learner b --------------------------------------------------------------------
    def output_layer_gradients(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """grad_W of each support image's cross-entropy, written out: (softmax(W h) - onehot(y)) h^T, [S, N, dim]."""
        errors = torch.softmax(self.base_out(features), dim=1) - F.one_hot(labels, self.task.ways).to(features.dtype)
        return errors.unsqueeze(2) * features.unsqueeze(1)

    def example_fast_weights(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """W*_i = m(Z, grad_W L_task(x'_i)) for each support image: [S, N, dim]."""
        return self.m(self.output_layer_gradients(features, labels))

    # -- an episode ------------------------------------------------------------------------------
    def episode_logits(self, episode: Episode, create_graph: bool) -> torch.Tensor:
        images = torch.cat([episode.support_x, episode.query_x])
        n_support = episode.support_y.numel()
        base = self.base_trunk(images)
        representation = self.repr_trunk(images)
        generator = torch.Generator().manual_seed(episode.seed)
        task_fast = self.task_fast_weights(representation[:n_support], episode.support_y, generator, create_graph)
        memory = self.example_fast_weights(base[:n_support], episode.support_y)  # M
        keys = self.represent(representation[:n_support], task_fast)  # R
        queries = self.represent(representation[n_support:], task_fast)
        attention = torch.softmax(F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T, dim=1)
        fast = torch.einsum("qs,snd->qnd", attention, memory)  # each query's W*
        query_features = base[n_support:]
        return self.base_out(query_features) + torch.einsum("qnd,qd->qn", fast, query_features)

    def train_batches(self) -> EpisodeBatches:
        return EpisodeBatches(self.task.ways, self.task.shots, self.hp["train_queries"])

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        return query_loss_step(self.optimizer, batch, lambda episode: self.episode_logits(episode, create_graph=True))

    def predict(self, episode: Episode) -> torch.Tensor:
        with torch.enable_grad():  # the fast weights are made of gradients, even at test time
            logits = self.episode_logits(episode, create_graph=False)
        return logits.detach()
