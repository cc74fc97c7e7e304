"""Matching Networks: Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016,
"Matching Networks for One Shot Learning", NeurIPS.

A query's label distribution is attention over the support set,
P(y | x, S) = sum_i a(x, x_i) y_i, with a = softmax over the support of the
cosine similarity between the query's embedding f(x) and each support
embedding g(x_i); training maximises log P of the query labels on episodes
drawn like the test episodes. The embedding is the Conv-4 backbone.

Full-context embeddings (``--hp fce=true``; the paper used them on
miniImageNet, not Omniglot): g(x_i, S) is a bidirectional LSTM over the
support embeddings added to g'(x_i), and f(x, S) is an attention LSTM that
reads the support K times (``fce_steps``): h_k = LSTM(f'(x), [h_{k-1}, r_{k-1}])
+ f'(x), r_k = sum_i softmax(h_k . g(x_i)) g(x_i). The paper feeds [h_{k-1}, r_{k-1}]
as the LSTM's hidden state; since an LSTM's state has one size, r_{k-1} enters
here beside f'(x) as the input instead, so the gates see the same three terms.

Deviations: the attention's similarity is, by default, the dot product of the
query embedding with each unit-normalised support embedding (``similarity=
support-cosine``), as the widely used reference implementations' distance
network computes it. That is |f(x)| times the paper's cosine: in a one-shot
episode the arg-max is the paper's, and the query's norm becomes a learned
inverse temperature. The paper's bounded cosine (``--hp similarity=cosine``)
caps the attention's odds at e^2 (e with non-negative Conv-4 features), so
its training signal is weak: 86.31 ± 0.74 after the default 10,000 Omniglot
episodes (run 8; the default similarity reads 97.39 ± 0.31, run 9). Those two
were test figures; the choice was judged again on validation only, trained on
Snell et al.'s ``train.txt`` and scored on the characters of ``val.txt``
(``--select val-classes``, 10,000 episodes): support-cosine 97.88 ± 0.26
(run 280) against cosine 87.49 ± 0.76 (run 282) at 5-way 1-shot, 99.52 ± 0.11
(run 286) against 91.83 ± 0.52 (run 288) at 5-way 5-shot. The default stands.
Adam at 1e-3 with the rate halved every 2,000 episodes (the paper
does not give its optimiser settings) and a fixed budget of episodes. The
logits returned are log P(y | x, S), so the harness's arg-max is the paper's
prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.backbones import Conv4
from fewshot.core.episode import Episode
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec, query_loss_step


class FullContext(nn.Module):
    """The full-context embeddings g(x_i, S) and f(x, S) of the paper's appendix."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)
        self.steps = steps

    def support(self, g: torch.Tensor) -> torch.Tensor:
        out, _ = self.support_lstm(g.unsqueeze(0))
        forward, backward = out[0].chunk(2, dim=-1)
        return g + forward + backward

    def query(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        h = torch.zeros_like(f)
        c = torch.zeros_like(f)
        read = torch.zeros_like(f)
        for _ in range(self.steps):
            h_hat, c = self.query_cell(torch.cat([f, read], dim=1), (h, c))
            h = h_hat + f
            read = torch.softmax(h @ g.T, dim=1) @ g
        return h


class MatchingNet(Learner):
    family = "metric"
    paper = "Vinyals et al. 2016, Matching Networks for One Shot Learning"
    hparams = {
        "lr": 1e-3,
        "lr_halve_every": 2000,
        "train_ways": 0,  # 0: as many as the benchmark cell's ways
        "train_queries": 5,
        "fce": False,
        "fce_steps": 5,
        "hidden": 64,
        "similarity": "support-cosine",
    }
    hparam_choices = {"similarity": ("support-cosine", "cosine")}
    chosen_on = {"similarity": "val-classes: Omniglot 5-way 1-shot and 5-shot, runs 280, 282, 286, 288"}
    hparam_ranges = {
        "lr": "(0, 10]",
        "lr_halve_every": "[1, 1e9]",
        "train_ways": "[0, 10000]",  # 0: the cell's; 1 would train on one class
        "train_queries": "[1, 10000]",
        "fce_steps": "[1, 1000]",
        "hidden": "[1, 4096]",
    }
    trains_on = ("ways", "shots")
    default_budget = {"glyphs": "600steps", "omniglot": "10000steps", "*": "2000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.backbone = Conv4(task.image_shape[0], hp["hidden"])
        dim = Conv4.output_dim(task.image_shape, hp["hidden"])
        self.context = FullContext(dim, hp["fce_steps"]) if hp["fce"] else None
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, hp["lr_halve_every"], gamma=0.5)

    def train_batches(self) -> EpisodeBatches:
        ways = min(self.hp["train_ways"] or self.task.ways, self.task.train_classes)
        return EpisodeBatches(ways, self.task.shots, self.hp["train_queries"])

    def log_probabilities(
        self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int
    ) -> torch.Tensor:
        if self.context is not None:
            support = self.context.support(support)
            query = self.context.query(query, support)
        if self.hp["similarity"] == "cosine":
            query = F.normalize(query, dim=1)
        attention = torch.softmax(query @ F.normalize(support, dim=1).T, dim=1)
        probabilities = attention @ F.one_hot(support_y, ways).to(attention.dtype)
        return probabilities.clamp_min(1e-12).log()

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        def query_log_probabilities(episode: Episode) -> torch.Tensor:
            n_support = episode.support_y.numel()
            features = self.backbone(torch.cat([episode.support_x, episode.query_x]))
            return self.log_probabilities(features[:n_support], episode.support_y, features[n_support:], episode.ways)

        metrics = query_loss_step(self.optimizer, batch, query_log_probabilities, F.nll_loss)
        self.scheduler.step()
        return metrics

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @torch.no_grad()
    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        return self.log_probabilities(episode.support_x, episode.support_y, episode.query_x, episode.ways)
