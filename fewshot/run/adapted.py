"""Any learner with a backbone, trained with a domain adaptation method (``--adapt METHOD``).

The wrapper is a learner like any other to the harness. Each training batch
holds the learner's own batch (labelled source images or source episodes) and a
batch of unlabelled target images. The wrapper never looks inside the learner's
step: the first time the learner runs its ``backbone`` in a step, a forward
pre-hook appends the target images to the backbone's input, so source and
target pass through the network together (one batch, as in the methods'
papers), and a forward hook splits the output again, hands the learner its
source rows and computes the adaptation's loss on both halves. That loss rides
on the source rows' autograd graph (:class:`_AddLoss`): when the learner
backpropagates its own loss, the adaptation's loss is backpropagated in the same
pass with weight one, so the learner's optimiser steps on the sum of the two,
whatever its step looks like. The method's own parameters (a domain classifier,
AutoDIAL's mixing weights) have an optimiser of their own, of the learner's
kind and settings, stepped after the learner's; a method's learning-rate
schedule (DANN's annealing) applies to both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fewshot.core.adaptation import Adaptation, Features
from fewshot.core.episode import Episode, LabelledImages
from fewshot.core.errors import FewshotError
from fewshot.core.learner import EpisodeBatches, ImageBatches, Learner


@dataclass(frozen=True)
class AdaptationBatches:
    """The learner's own batches, plus ``target_batch`` unlabelled target images (and ``labelled`` labelled ones)."""

    source: EpisodeBatches | ImageBatches
    target_batch: int
    labelled: int = 0


@dataclass(frozen=True)
class AdaptationBatch:
    source: list[Episode] | LabelledImages
    target_x: torch.Tensor
    target_labelled: LabelledImages | None = None

    def to(self, device) -> AdaptationBatch:
        source = [e.to(device) for e in self.source] if isinstance(self.source, list) else self.source.to(device)
        labelled = None if self.target_labelled is None else self.target_labelled.to(device)
        return AdaptationBatch(source, self.target_x.to(device, non_blocking=True), labelled)


class _AddLoss(torch.autograd.Function):
    """The identity on ``features``; backward also sends gradient one to ``loss``, so the learner's
    backward pass through ``features`` backpropagates ``loss`` too."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, torch.ones((), dtype=grad.dtype, device=grad.device)


def adaptable(learner: Learner) -> bool:
    return isinstance(getattr(learner, "backbone", None), nn.Module)


class Adapted(Learner):
    steps_done: torch.Tensor  # a buffer

    def __init__(
        self,
        learner: Learner,
        method: str,
        adaptation: Adaptation,
        target_batch: int = 64,
        target_labels: int = 0,
        target_images: Callable[[], Iterator[torch.Tensor]] | None = None,
    ):
        super().__init__(learner.task, learner.hp)
        self.learner, self.adaptation, self.method = learner, adaptation, method
        self.target_batch, self.target_labels = target_batch, target_labels
        self.target_images = target_images
        self.protocol_note = "; ".join(n for n in (learner.protocol_note, adaptation.protocol_note) if n)
        self.transductive = learner.transductive or adaptation.transductive
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))
        inner = self._inner_optimizers()
        adaptation.attach(self._backbone)
        learned = {id(p) for opt in inner.values() for group in opt.param_groups for p in group["params"]}
        own = [p for p in self.parameters() if id(p) not in learned and p.requires_grad]
        # The method's own parameters are trained like the learner's: the same optimiser and settings.
        like = next(iter(inner.values()), None)
        self.optimizer = (
            None if not own else type(like)(own, **like.defaults) if like is not None else torch.optim.Adam(own)
        )
        self._scheduled = list(inner.values()) + ([self.optimizer] if self.optimizer is not None else [])
        self._base_lrs = [[group["lr"] for group in opt.param_groups] for opt in self._scheduled]
        self._pending: dict[str, Any] | None = None
        self.last_loss = 0.0
        self._backbone.register_forward_pre_hook(self._join_target)
        self._backbone.register_forward_hook(self._split_and_add_loss)
        extractor = getattr(self._backbone, "extractor_end", None)
        if extractor:
            self._backbone.get_submodule(extractor).register_forward_hook(self._keep_extracted)

    @property
    def _backbone(self) -> nn.Module:
        backbone = getattr(self.learner, "backbone", None)
        assert isinstance(backbone, nn.Module), "only adaptable learners (a backbone module) are adapted"
        return backbone

    def network_name(self) -> str:
        return self.learner.network_name()

    def _inner_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {name: value for name, value in vars(self.learner).items() if isinstance(value, torch.optim.Optimizer)}

    # -- training -------------------------------------------------------------------------
    # The wrapper's own batch kind, which only the engine reads (it dispatches on the type).
    def train_batches(self) -> EpisodeBatches | ImageBatches | AdaptationBatches | None:  # type: ignore[override]
        spec = self.learner.train_batches()
        if spec is None or not self.adaptation.changes_training:
            return spec
        return AdaptationBatches(spec, self.target_batch, self.target_labels)

    def train_step(self, batch: AdaptationBatch | list[Episode] | LabelledImages) -> dict[str, float]:
        if not isinstance(batch, AdaptationBatch):  # a method that leaves training alone
            return self.learner.train_step(batch)
        progress = min(float(self.steps_done) / max(self.adaptation.horizon, 1), 1.0)
        factor = self.adaptation.lr_factor(progress)
        for opt, base in zip(self._scheduled, self._base_lrs):
            for group, lr in zip(opt.param_groups, base):
                group["lr"] = lr * factor
        source_labels = batch.source.y if isinstance(batch.source, LabelledImages) else None
        self._pending = {
            "target": batch.target_x,
            "labelled": batch.target_labelled,
            "labels": source_labels,
            "progress": progress,
        }
        if self.optimizer is not None:
            self.optimizer.zero_grad()
        try:
            stats = self.learner.train_step(batch.source)
        finally:
            missed, self._pending = self._pending is not None and "split" not in self._pending, None
        if missed:
            raise FewshotError(
                f"--adapt {self.method}: the learner's training step never ran its backbone, so "
                f"there are no features to adapt"
            )
        if self.optimizer is not None:
            self.optimizer.step()
        self.steps_done += 1
        return {**stats, "adapt_loss": self.last_loss}

    def _join_target(self, module: nn.Module, args: tuple) -> tuple | None:
        pending = self._pending
        if pending is None or "split" in pending or not module.training or not torch.is_grad_enabled():
            return None
        x = args[0]
        parts = [x, pending["target"].to(x.dtype)]
        if pending["labelled"] is not None:
            parts.append(pending["labelled"].x.to(x.dtype))
        pending["split"] = (len(x), len(pending["target"]))
        self.adaptation.begin_batch(pending["split"])
        return (torch.cat(parts), *args[1:])

    def _keep_extracted(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        pending = self._pending
        if pending is not None and "split" in pending and "done" not in pending and "extracted" not in pending:
            pending["extracted"] = output.flatten(1)

    def _split_and_add_loss(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        pending = self._pending
        if pending is None or "split" not in pending or pending.get("done"):
            return None
        pending["done"] = True
        self.adaptation.begin_batch(None)
        sources, targets = pending["split"]
        head = getattr(self.learner, "head", None)
        extracted = pending.get("extracted")

        def features(rows: slice, labels: torch.Tensor | None) -> Features:
            out = output[rows]
            return Features(
                out, head(out) if head is not None else None, labels, extracted[rows] if extracted is not None else None
            )

        source = features(slice(0, sources), pending["labels"])
        target = features(slice(sources, sources + targets), None)
        labelled = None
        if pending["labelled"] is not None:
            labelled = features(slice(sources + targets, None), pending["labelled"].y)
        loss = self.adaptation.loss(source, target, pending["progress"], labelled=labelled)
        self.last_loss = float(loss.detach())
        return _AddLoss.apply(output[:sources], loss)

    # -- evaluation -----------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.embed(x)

    def predict(self, episode: Episode) -> torch.Tensor:
        if not self.adaptation.transductive:
            return self.learner.predict(episode)
        images = torch.cat([episode.support_x, episode.query_x])
        with self.adaptation.normalise_episode(self._backbone, images):
            return self.learner.predict(episode)

    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        return self.learner.predict_embedded(episode)

    # An instance's answer where Learner's is the class's: a transductive method embeds per episode.
    def caches_embeddings(self) -> bool:  # type: ignore[override]
        return self.learner.caches_embeddings() and not self.adaptation.transductive

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.classify(x)

    def before_evaluation(self) -> None:
        if self.target_images is not None:
            self.adaptation.before_evaluation(self._backbone, self.target_images())

    # -- checkpoints ----------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        if not self.adaptation.changes_training:  # the learner's own checkpoint, shared with the source-only run
            return self.learner.training_state()
        state = {
            "model": self.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self._inner_optimizers().items()},
        }
        if self.optimizer is not None:
            state["adaptation_optimizer"] = self.optimizer.state_dict()
        return state

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        if not self.adaptation.changes_training:
            self.learner.load_training_state(state)
            return
        self.load_state_dict(state["model"])
        for name, value in state.get("optimizers", {}).items():
            getattr(self.learner, name).load_state_dict(value)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["adaptation_optimizer"])
