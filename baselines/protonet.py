"""Prototypical Networks: Snell, Swersky and Zemel 2017, "Prototypical Networks for
Few-shot Learning", NeurIPS.

A class is represented by the mean of its support embeddings (its prototype);
a query's logits are the negative squared Euclidean distances to the
prototypes. The embedding is the Conv-4 backbone. Training follows the
paper's Omniglot recipe: episodes with more classes than at test time
(60-way, 5 queries per class), as many shots as at test time, Adam at 1e-3
with the learning rate halved every 2,000 episodes. On RGB natural images
(miniImageNet and its kin) the paper's miniImageNet recipe: 30-way episodes
for 1-shot and 20-way otherwise, 15 queries per class. ``--hp backbone=resnet12``
embeds with ResNet-12 (``fewshot.core.backbones.ResNet12``), as Lee et al. 2019
report ProtoNet with it (they train it by SGD with Nesterov momentum; here
Adam as the paper's Conv-4).

Deviation: the paper trains until the validation loss stops improving; here
training runs for a fixed budget of episodes (see ``default_budget``), so
that a benchmark cell is reproducible from its configuration alone.
"""

from __future__ import annotations

import torch

from fewshot.core.backbones import make_backbone
from fewshot.core.episode import Episode
from fewshot.core.errors import FewshotError
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec, natural_images, query_loss_step

# The paper's training episodes: on Omniglot, 60-way with 5 queries; on miniImageNet, 30-way (1-shot) or
# 20-way (5-shot) with 15 queries.
OMNIGLOT_TRAINING = {"train_ways": 60, "train_queries": 5}


def mini_imagenet_training(shots: int) -> dict[str, int]:
    return {"train_ways": 30 if shots <= 1 else 20, "train_queries": 15}


def prototype_logits(support: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
    """Negative squared distances from each query embedding to each class mean (support grouped by class)."""
    prototypes = support.reshape(ways, -1, support.shape[-1]).mean(1)
    return -torch.cdist(query, prototypes).pow(2)


class ProtoNet(Learner):
    family = "metric"
    paper = "Snell et al. 2017, Prototypical Networks for Few-shot Learning"
    hparams = {
        "lr": 1e-3,
        "lr_halve_every": 2000,
        "train_ways": 0,  # 0: the paper's (60 on Omniglot; 30 for 1-shot, 20 otherwise on natural images)
        "train_shots": 0,  # 0: as many as the benchmark cell's shots
        "train_queries": 0,  # 0: the paper's (5 on Omniglot, 15 on natural images)
        "backbone": "conv4",
        "hidden": 64,  # Conv-4's filters
    }
    hparam_choices = {"backbone": ("conv4", "resnet12")}
    # recorded before 0 came to mean the paper's, which is what those runs used
    recorded_defaults = {"train_ways": 60, "train_queries": 5}
    hparam_ranges = {
        "lr": "(0, 10]",
        "lr_halve_every": "[1, 1e9]",
        "train_ways": "[0, 10000]",
        "train_shots": "[0, 10000]",
        "train_queries": "[0, 10000]",
        "hidden": "[1, 4096]",
    }
    trains_on = ("shots",)
    default_budget = {"glyphs": "600steps", "omniglot": "10000steps", "*": "2000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        if hp["train_ways"] == 1:
            raise FewshotError(
                "--hp train_ways=1: protonet's training episodes need 2 classes at least (0: the paper's)"
            )
        self.backbone, _ = make_backbone(hp["backbone"], task.image_shape, hp["hidden"])
        paper = mini_imagenet_training(task.shots) if natural_images(task) else OMNIGLOT_TRAINING
        self.settings = {**hp, **{name: value for name, value in paper.items() if not hp[name]}}
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, hp["lr_halve_every"], gamma=0.5)

    def train_batches(self) -> EpisodeBatches:
        ways = min(self.settings["train_ways"], self.task.train_classes)
        return EpisodeBatches(ways, self.hp["train_shots"] or self.task.shots, self.settings["train_queries"])

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        def query_logits(episode: Episode) -> torch.Tensor:
            n_support = episode.support_y.numel()
            features = self.backbone(torch.cat([episode.support_x, episode.query_x]))
            return prototype_logits(features[:n_support], features[n_support:], episode.ways)

        metrics = query_loss_step(self.optimizer, batch, query_logits)
        self.scheduler.step()
        return metrics

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @torch.no_grad()
    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        return prototype_logits(episode.support_x, episode.query_x, episode.ways)
