"""Baseline and Baseline++: Chen, Liu, Kira, Wang and Huang 2019, "A Closer Look at
Few-shot Classification", ICLR.

Pretraining: the Conv-4 backbone and a classifier over all training classes,
trained with cross-entropy on batches of labelled images (Adam, 1e-3).
Baseline uses a linear classifier; Baseline++ (``--hp head=cosine``) a cosine
classifier, scores = scale x cos(feature, class weight), with the paper's
scale (2 for at most 200 classes, else 10).

Per episode the pretrained classifier is dropped and a new one for the N
classes is trained on the support set, as in the paper's code: SGD at 0.01,
momentum 0.9, dampening 0.9, weight decay 1e-3, 100 epochs over the support
set in batches of 4; the backbone stays frozen.

Beyond the paper, ``tune_blocks`` fine-tunes the last k Conv-4 blocks with
the new classifier (0: frozen backbone, the paper's setting; 4: everything):
the transfer question of Yosinski et al. 2014, "How transferable are features
in deep neural networks?". Batch norm keeps its pretraining statistics while
fine-tuning.

The backbone is the benchmark's (``--hp backbone=auto``): Conv-4, or on the
digit domains Ganin et al.'s small LeNet (``fewshot.core.backbones.LeNet``),
trained as they train it, by SGD with momentum 0.9 at 0.01 (``optimizer=auto``;
Adam at 1e-3 elsewhere); its classifier (``head``) scores the target images of
the domain adaptation protocol. ``--hp backbone=resnet12`` pretrains ResNet-12
(``fewshot.core.backbones.ResNet12``), the network of Chen et al.'s deeper rows
and of later papers on miniImageNet and its kin. The blocks that stay frozen are the episode-independent
embedding, so each test image passes through them once.

On natural images (miniImageNet and its kin) pretraining batches are augmented
as the paper's code trains (``--hp augment=auto``, ``fewshot.core.augment``:
random resized crop, colour jitter, horizontal flip); never at test time.
Images are normalised by the import's channel statistics.

On the digit shifts ``--hp centre=on`` subtracts from the input the per-channel
mean of the shift's training images, Ganin et al.'s "mean subtraction"
(``Benchmark.pixel_mean``); the default, ``off``, feeds the pixels in [0, 1] as
every recorded digit run did, until the two are compared on validation data
(issue 22's search, ``leaderboard/grids/digits-select.toml``).

Deviations: the paper pretrains with batches of 16 for a number of epochs
chosen per dataset; here batches of 64 for a fixed step budget (faster on a
CPU, same objective). Fine-tuning randomness (initial classifier, batch
order) is seeded by the episode, so results do not depend on episode order.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.backbones import NETWORKS, make_backbone
from fewshot.core.episode import Episode, LabelledImages
from fewshot.core.learner import ImageBatches, Learner, TaskSpec, classification_step, natural_images


def cosine_scale(classes: int) -> float:
    return 2.0 if classes <= 200 else 10.0


class Classifier(nn.Module):
    """A linear or cosine classifier (Baseline / Baseline++) with explicit, seedable initialisation."""

    def __init__(self, features: int, classes: int, kind: str, generator: torch.Generator | None = None):
        super().__init__()
        bound = 1 / math.sqrt(features)  # torch.nn.Linear's default initialisation
        self.weight = nn.Parameter((torch.rand(classes, features, generator=generator) * 2 - 1) * bound)
        self.bias = (
            nn.Parameter((torch.rand(classes, generator=generator) * 2 - 1) * bound) if kind == "linear" else None
        )
        self.kind, self.scale = kind, cosine_scale(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, self.weight, self.bias)
        return self.scale * F.linear(F.normalize(x, dim=1, eps=1e-5), F.normalize(self.weight, dim=1, eps=1e-5))


class FineTune(Learner):
    family = "fine-tuning"
    paper = "Chen et al. 2019, A Closer Look at Few-shot Classification (Baseline, Baseline++)"
    hparams = {
        "head": "linear",
        "optimizer": "auto",
        "lr": 0.0,
        "batch_size": 64,
        "hidden": 64,
        "backbone": "auto",
        "augment": "auto",  # Chen et al.'s training augmentation; auto: on natural images, as their results
        "centre": "off",  # on: subtract the benchmark's pixel mean where its papers do (Ganin et al.'s digits)
        "tune_blocks": 0,
        "ft_epochs": 100,
        "ft_batch": 4,
        "ft_lr": 0.01,
        "ft_momentum": 0.9,
        "ft_dampening": 0.9,
        "ft_weight_decay": 1e-3,
    }
    hparam_choices = {
        "head": ("linear", "cosine"),
        "augment": ("auto", "on", "off"),
        "centre": ("off", "on"),
        "tune_blocks": (0, 1, 2, 3, 4),
        "backbone": ("auto", *NETWORKS),
        "optimizer": ("auto", "adam", "sgd"),
    }
    hparam_ranges = {
        "lr": "[0, 10]",  # 0: the optimiser's own (auto)
        "batch_size": "[1, 100000]",
        "hidden": "[1, 4096]",
        "ft_epochs": "[0, 100000]",
        "ft_batch": "[1, 100000]",
        "ft_lr": "(0, 10]",
        "ft_momentum": "[0, 1)",
        "ft_dampening": "[0, 1]",
        "ft_weight_decay": "[0, 10]",
    }
    renamed_hparams = {"network": "backbone"}
    eval_hparams = frozenset(
        {"tune_blocks", "ft_epochs", "ft_batch", "ft_lr", "ft_momentum", "ft_dampening", "ft_weight_decay"}
    )
    trains_on = ()
    default_budget = {"glyphs": "3000steps", "omniglot": "15000steps", "digits": "3000steps", "*": "5000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        network = task.network if hp["backbone"] == "auto" else hp["backbone"]
        pixel_mean = task.pixel_mean if hp["centre"] == "on" else ()
        self.backbone, self.features = make_backbone(network, task.image_shape, hp["hidden"], pixel_mean)
        self.classifier = Classifier(self.features, max(task.train_classes, 1), hp["head"])
        self.optimizer = pretraining_optimizer(self.parameters(), network, hp["optimizer"], hp["lr"])

    def train_batches(self) -> ImageBatches:
        augment = self.hp["augment"] == "on" or (self.hp["augment"] == "auto" and natural_images(self.task))
        return ImageBatches(self.hp["batch_size"], augment)

    def train_step(self, batch: LabelledImages) -> dict[str, float]:
        return classification_step(self.optimizer, self.classify, batch)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))

    @property
    def frozen_blocks(self) -> int:
        return len(self.backbone.blocks) - self.hp["tune_blocks"]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(x, 0, self.frozen_blocks)

    def sgd(self) -> dict[str, float]:
        return {
            "lr": self.hp["ft_lr"],
            "momentum": self.hp["ft_momentum"],
            "dampening": self.hp["ft_dampening"],
            "weight_decay": self.hp["ft_weight_decay"],
        }

    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        generator = torch.Generator().manual_seed(episode.seed)
        device = episode.support_x.device
        head = Classifier(self.features, episode.ways, self.hp["head"], generator).to(device)
        support, labels = episode.support_x.detach(), episode.support_y
        if self.hp["tune_blocks"] == 0:
            fit_head(head, support, labels, self.hp["ft_epochs"], self.hp["ft_batch"], self.sgd(), generator)
            with torch.no_grad():
                return head(episode.query_x)
        tuned = copy.deepcopy(self.backbone.blocks[self.frozen_blocks :])  # adapted per episode, never the model itself
        tuned.eval()  # batch norm keeps the pretraining statistics
        network = nn.Sequential(tuned, nn.Flatten(), head)
        fine_tune(network, support, labels, self.hp["ft_epochs"], self.hp["ft_batch"], self.sgd(), generator)
        with torch.no_grad():
            return network(episode.query_x)


def pretraining_optimizer(parameters, network: str, kind: str, lr: float) -> torch.optim.Optimizer:
    """Adam at 1e-3 (Chen et al.), or on the digit LeNet Ganin et al.'s SGD with momentum 0.9 at 0.01 ("auto",
    and ``lr`` 0: the recipe's rate), whose learning-rate annealing DANN applies."""
    if kind == "auto":
        kind = "sgd" if network.startswith("lenet") else "adam"
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=lr or 0.01, momentum=0.9)
    return torch.optim.Adam(parameters, lr=lr or 1e-3)


def _batches(count: int, epochs: int, batch: int, generator: torch.Generator):
    for _ in range(epochs):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch):
            yield order[start : start + batch]


def fine_tune(
    network: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, sgd: dict, generator: torch.Generator
) -> None:
    """The paper's fine-tuning loop with autograd and ``torch.optim.SGD`` (used when blocks are tuned)."""
    optimizer = torch.optim.SGD(network.parameters(), **sgd)
    with torch.enable_grad():
        for rows in _batches(len(y), epochs, batch, generator):
            rows = rows.to(x.device)
            optimizer.zero_grad()
            F.cross_entropy(network(x[rows]), y[rows]).backward()
            optimizer.step()


@torch.no_grad()
def fit_head(
    head: Classifier, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, sgd: dict, generator: torch.Generator
) -> None:
    """The same loop on fixed features with the classifier's gradients written out.

    Identical mathematics to :func:`fine_tune` (cross-entropy gradients of the
    linear or cosine classifier, then SGD with momentum, dampening and weight
    decay as ``torch.optim.SGD`` applies them), without autograd's per-step
    overhead, which dominated evaluation time for the paper's hundreds of tiny steps.
    """
    params = [head.weight] + ([head.bias] if head.bias is not None else [])
    buffers: list[torch.Tensor | None] = [None] * len(params)
    onehot = F.one_hot(y, head.weight.shape[0]).to(x.dtype)
    unit_x = F.normalize(x, dim=1, eps=1e-5) if head.kind == "cosine" else x
    for rows in _batches(len(y), epochs, batch, generator):
        rows = rows.to(x.device)
        inputs = unit_x[rows]
        if head.kind == "linear":
            scores = F.linear(inputs, head.weight, head.bias)
        else:
            norms = head.weight.norm(dim=1, keepdim=True).clamp_min(1e-5)
            unit_w = head.weight / norms
            scores = head.scale * inputs @ unit_w.T
        delta = (scores.softmax(1) - onehot[rows]) / len(rows)  # d loss / d scores
        if head.kind == "linear":
            grads = [delta.T @ inputs, delta.sum(0)]
        else:
            g_unit = head.scale * delta.T @ inputs
            grads = [(g_unit - unit_w * (g_unit * unit_w).sum(1, keepdim=True)) / norms]
        for i, (param, grad) in enumerate(zip(params, grads)):
            grad = grad + sgd["weight_decay"] * param
            buffer = buffers[i]
            if buffer is None:
                buffer = buffers[i] = grad.clone()
            else:
                buffer.mul_(sgd["momentum"]).add_(grad, alpha=1 - sgd["dampening"])
            param.sub_(sgd["lr"] * buffer)
