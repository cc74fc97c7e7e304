"""The episode: a support set and a query set of one few-shot task, as plain tensors.

Layout, written once here and checked when an episode is built: support first,
grouped by class, ``support_y = [0]*K + [1]*K + ... + [N-1]*K``; the queries
likewise with Q per class, except in the all-classes evaluation of zero-shot
protocols, whose query set is every test image of every class (any number per
class, in any order). ``class_ids`` are the dataset's class indices (for
side-information), ``side`` the class descriptions of zero-shot episodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class Episode:
    support_x: torch.Tensor  # [N*K, ...] float
    support_y: torch.Tensor  # [N*K] int64 in 0..N-1
    query_x: torch.Tensor  # [N*Q, ...]
    query_y: torch.Tensor  # [N*Q]
    class_ids: torch.Tensor  # [N] dataset class indices
    seed: int = 0  # for learners whose adaptation is stochastic: fixed per episode
    side: torch.Tensor | None = None  # [N, D] class descriptions (zero-shot)
    domain: str | None = None
    support_items: torch.Tensor | None = None  # which images (image_index * 4 + quarter turns)
    query_items: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.class_ids.numel()
        if n < 1:
            raise ValueError("an episode needs at least one class")
        for name in ("support", "query"):
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            if x.shape[0] != y.shape[0] or y.dim() != 1 or (name == "support" and y.numel() % n):
                raise ValueError(
                    f"{name} set: {x.shape[0]} inputs, {y.numel()} labels, {n} classes do not form an episode"
                )
        if self.side is not None and self.side.shape[0] != n:
            raise ValueError("side information needs one row per class")

    @property
    def ways(self) -> int:
        return self.class_ids.numel()

    @property
    def shots(self) -> int:
        return self.support_y.numel() // self.ways

    @property
    def queries(self) -> int:
        return self.query_y.numel() // self.ways

    def to(self, device: torch.device | str) -> Episode:
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return dataclasses.replace(
            self,
            support_x=move(self.support_x),
            support_y=move(self.support_y),
            query_x=move(self.query_x),
            query_y=move(self.query_y),
            side=None if self.side is None else move(self.side),
        )

    def map_inputs(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Episode:
        """The same episode with ``fn`` applied to the support and query inputs (an embedding, say)."""
        return dataclasses.replace(self, support_x=fn(self.support_x), query_x=fn(self.query_x))


@lru_cache(maxsize=256)
def _grouped_labels(ways: int, per_class: int) -> torch.Tensor:
    return torch.arange(ways).repeat_interleave(per_class)


def grouped_labels(ways: int, per_class: int) -> torch.Tensor:
    """``[0]*per_class + [1]*per_class + ...``; a fresh tensor, built once per shape."""
    return _grouped_labels(ways, per_class).clone()


@dataclass(frozen=True)
class LabelledImages:
    """A batch of images with their labels (the split's class rows), for learners that pretrain a classifier."""

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device: torch.device | str) -> LabelledImages:
        return LabelledImages(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True))


def random_episode(
    ways: int, shots: int, queries: int, seed: int = 0, image_shape: tuple[int, ...] = (1, 28, 28)
) -> Episode:
    """An episode of uniform random images with grouped labels, fixed by ``seed``: for timing learners
    and checking their mechanics, where the images' content does not matter."""
    generator = torch.Generator().manual_seed(seed)
    return Episode(
        torch.rand(ways * shots, *image_shape, generator=generator),
        grouped_labels(ways, shots),
        torch.rand(ways * queries, *image_shape, generator=generator),
        grouped_labels(ways, queries),
        torch.arange(ways),
        seed=seed,
    )
