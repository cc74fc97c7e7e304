"""Reptile: Nichol, Achiam and Schulman 2018, "On First-Order Meta-Learning
Algorithms", arXiv:1803.02999.

For each task of a meta-batch, train a copy of the network on the task with a
few steps of Adam on mini-batches, then move the shared parameters towards the
mean of the trained copies: ``theta += epsilon * mean(theta_task - theta)``,
with ``epsilon`` annealed linearly from 1 to 0. No second derivatives, no
query loss. At test time the network is trained on the support set the same
way and classifies the queries.

The paper's Omniglot setting (its code's ``run_omniglot.py`` flags) is the
default: MAML's strided Conv-4 (``fewshot.core.backbones.MAMLConv4``); training
tasks of 10 images per class, inner Adam with beta1 = 0, 5 steps of batches
of 10 (5-way) or 10 steps of 20 (20-way) at 1e-3 (5e-4 for 20-way),
meta-batch 5; at test time 50 steps on batches of 5 (5-way) or 10 (20-way).
As in the paper's code the inner Adam's second-moment estimate persists from
task to task during training and test-time adaptation starts from it without
changing it. Batch norm always uses the statistics of its batch.

Evaluation is **non-transductive** (the setting whose paper figure is quoted
beside ours, 95.39% on 5-way 1-shot): each query is classified in a batch
made of the support set and that query alone, so batch statistics never mix
queries; ``transductive=true`` classifies the queries together instead.

Deviations: the paper trains for 100,000 (5-way) or 200,000 (20-way)
meta-iterations and anneals ``epsilon`` over them; here the budget is a CPU's
(``default_budget``) and ``epsilon`` reaches 0 after ``anneal_steps`` steps
(then stays 0), a hyperparameter, because a learner never sees its budget.
On natural images the network is MAML's MiniImagenet one (32 filters,
max-pooled; ``--hp backbone=resnet12`` for ResNet-12), but the settings stay
the Omniglot ones above (deviation: the paper's miniImageNet flags differ:
8 inner steps, 15 training shots).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import vmap

from fewshot.baselines.inner_loop import Params, detached_parameters
from fewshot.core.backbones import GRADIENT_BACKBONES, gradient_network
from fewshot.core.episode import Episode
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec, paper_defaults

# The paper's Omniglot flags per number of ways: inner batch, inner steps, inner lr, test batch.
PAPER_SETTINGS = {
    5: {"inner_batch": 10, "inner_steps": 5, "inner_lr": 1e-3, "test_batch": 5},
    20: {"inner_batch": 20, "inner_steps": 10, "inner_lr": 5e-4, "test_batch": 10},
}


class Reptile(Learner):
    adam_steps: torch.Tensor  # buffers
    meta_steps: torch.Tensor

    family = "gradient"
    paper = "Nichol et al. 2018, On First-Order Meta-Learning Algorithms"
    hparams = {
        "inner_batch": 0,  # 0: the paper's for the cell's ways (10 for 5-way, 20 for 20-way)
        "inner_steps": 0,  # 0: the paper's (5 for 5-way, 10 for 20-way)
        "inner_lr": 0.0,  # 0: the paper's (1e-3 for 5-way, 5e-4 for 20-way)
        "test_batch": 0,  # 0: the paper's (5 for 5-way, 10 for 20-way)
        "test_steps": 50,
        "train_shots": 10,
        "meta_batch": 5,
        "anneal_steps": 3000,
        "transductive": False,
        "backbone": "auto",  # as MAML's: its network for the images, or conv4 (hidden filters), or resnet12
        "hidden": 64,
    }
    hparam_choices = {"backbone": GRADIENT_BACKBONES}
    hparam_ranges = {
        "inner_batch": "[0, 10000]",  # 0 (the paper's), like the other zeros here
        "inner_steps": "[0, 10000]",
        "inner_lr": "[0, 10]",
        "test_batch": "[0, 10000]",
        "test_steps": "[0, 10000]",
        "train_shots": "[1, 10000]",
        "meta_batch": "[1, 10000]",
        "anneal_steps": "[0, 1e9]",
        "hidden": "[1, 4096]",
    }
    eval_hparams = frozenset({"test_steps", "test_batch", "transductive"})
    trains_on = ("ways",)
    default_budget = {"glyphs": "300steps", "omniglot": "3000steps", "*": "1000steps"}
    protocol_note = "non-transductive: each query is classified in a batch of the support set and itself"

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.settings = paper_defaults(self.hp, PAPER_SETTINGS, task.ways)
        self.net = gradient_network(hp["backbone"], task.image_shape, task.ways, hp["hidden"], False, task.network)
        for name, p in self.net.named_parameters():
            self.register_buffer(_moment_name(name), torch.zeros_like(p))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("meta_steps", torch.zeros((), dtype=torch.long))
        if self.hp["transductive"]:
            self.protocol_note = "transductive: the queries of an episode are classified together"
            self.transductive = True

    def train_batches(self) -> EpisodeBatches:
        return EpisodeBatches(self.task.ways, self.hp["train_shots"], 0, self.hp["meta_batch"])

    # -- the inner loop: Adam with beta1 = 0 on mini-batches of one task --------------------
    def train_on(
        self, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int, seed: int, keep_moments: bool
    ) -> Params:
        """A copy of the parameters trained on (x, y): ``steps`` Adam steps on shuffled mini-batches."""
        params = detached_parameters(self.net)
        moments = {name: getattr(self, _moment_name(name)).clone() for name in params}
        t = int(self.adam_steps)
        order = _batches(y.numel(), steps, batch, seed)
        beta2, eps, lr = 0.999, 1e-8, self.settings["inner_lr"]
        with torch.enable_grad():
            for rows in order:
                loss = F.cross_entropy(self.net.forward_with(params, x[rows]), y[rows])
                grads = torch.autograd.grad(loss, list(params.values()))
                t += 1
                step = lr * (1 - beta2**t) ** 0.5  # with beta1 = 0 the first moment is the gradient itself
                with torch.no_grad():
                    for (name, p), g in zip(params.items(), grads):
                        moments[name].mul_(beta2).add_(g * g, alpha=1 - beta2)
                        params[name] = (p - step * g / (moments[name].sqrt() + eps)).requires_grad_()
        if keep_moments:
            for name, m in moments.items():
                getattr(self, _moment_name(name)).copy_(m)
            self.adam_steps.fill_(t)
        return params

    # -- the learner interface ------------------------------------------------------------
    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        s = self.settings
        epsilon = max(0.0, 1.0 - int(self.meta_steps) / max(1, s["anneal_steps"]))
        meta = dict(self.net.named_parameters())
        moved = {name: torch.zeros_like(p) for name, p in meta.items()}
        for episode in batch:
            trained = self.train_on(
                episode.support_x,
                episode.support_y,
                s["inner_steps"],
                s["inner_batch"],
                episode.seed,
                keep_moments=True,
            )
            for name, p in trained.items():
                moved[name] += (p.detach() - meta[name].detach()) / len(batch)
        with torch.no_grad():
            for name, p in meta.items():
                p.add_(moved[name], alpha=epsilon)
        self.meta_steps += 1
        return {"epsilon": epsilon, "step_norm": float(torch.cat([m.flatten() for m in moved.values()]).norm())}

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        s = self.settings
        fast = self.train_on(
            episode.support_x, episode.support_y, s["test_steps"], s["test_batch"], episode.seed, keep_moments=False
        )
        if s["transductive"]:
            return self.net.forward_with(fast, episode.query_x)

        def with_support(query: torch.Tensor) -> torch.Tensor:
            return self.net.forward_with(fast, torch.cat([episode.support_x, query[None]]))[-1]

        return vmap(with_support)(episode.query_x)


def _moment_name(parameter: str) -> str:
    return "adam_v_" + parameter.replace(".", "_")


def _batches(count: int, steps: int, batch: int, seed: int) -> list[torch.Tensor]:
    """Mini-batches cycling through shuffled passes of ``count`` items, as the paper's code draws them."""
    generator = torch.Generator().manual_seed(seed)
    rows, out = torch.empty(0, dtype=torch.long), []
    for _ in range(steps):
        while rows.numel() < batch:
            rows = torch.cat([rows, torch.randperm(count, generator=generator)])
        out.append(rows[:batch])
        rows = rows[batch:]
    return out
