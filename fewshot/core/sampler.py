"""Seeded episodes and image batches, drawn by tensor indexing from decoded arrays.

Episode ``i`` of an :class:`EpisodeSampler` is a pure function of
(dataset, split, ways, shots, queries, seed, role, i): its random numbers come
from a generator seeded with ``(seed, role, i)`` alone, so the same episode
comes out in any order, in any process, for any learner. A plan (class rows
and item ids, integers only) is drawn first; images are gathered from the
decoded uint8 array in one indexing operation.

Item ids are ``image_index * 4 + quarter_turns``: a rotated class (Vinyals et
al.'s convention) is the same images turned, never a copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from fewshot.core.augment import augment
from fewshot.core.data import ClassImages, FixedEpisodes, Split
from fewshot.core.episode import Episode, LabelledImages, grouped_labels
from fewshot.core.errors import FewshotError

ROLE_STREAMS = {"test": 0, "val": 1, "train": 2, "target": 3, "target-labelled": 4, "augment": 5}


def render(data: ClassImages, items: torch.Tensor | np.ndarray, normalise: bool = True) -> torch.Tensor:
    """Float images in [0, 1] for item ids (image index and quarter turns), normalised by the dataset's channel
    statistics where it has them (``normalised``).

    One gather of whole images, then a quarter turn of the rows that need one;
    numpy's indexing costs a fraction of torch's per-call overhead on these small blocks.
    """
    items = items.numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
    if data.is_features:  # precomputed features: no pixels, no quarter turns
        return torch.from_numpy(data.images.numpy()[items // 4])
    images = data.images.numpy()[items // 4]
    turns = items % 4
    if turns.any():
        for k, turn in _QUARTER_TURNS.items():
            rows = np.flatnonzero(turns == k)
            if rows.size:
                images[rows] = turn(images[rows])
    pixels = torch.from_numpy(images).float().div_(255.0)
    return normalised(data, pixels) if normalise else pixels


def normalised(data: ClassImages, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] less the dataset's channel means, over its channel standard deviations (imported natural
    images, whose training split's statistics the import records); others as they are."""
    if data.normalisation is None:
        return pixels
    mean, std = (torch.tensor(v, dtype=pixels.dtype).view(1, -1, 1, 1) for v in data.normalisation)
    return pixels.sub_(mean).div_(std)


# Counter-clockwise quarter turns of [n, C, H, W] blocks as views (np.rot90 with axes (2, 3), minus its overhead).
_QUARTER_TURNS = {
    1: lambda x: x[..., ::-1].swapaxes(2, 3),
    2: lambda x: x[..., ::-1, ::-1],
    3: lambda x: x[..., ::-1, :].swapaxes(2, 3),
}


def _generator(seed: int, role: str, index: int) -> np.random.Generator:
    """A counter-based stream: episode ``index`` of ``role`` under ``seed``, independent of every other."""
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, index, ROLE_STREAMS[role], 0]))


class ImagePool:
    """For each class row of a split, the indices of the images it may use (padded with -1)."""

    def __init__(self, data: ClassImages, split: Split):
        n_classes = len(data.classes)
        if split.image_mask is None:
            eligible = torch.arange(data.labels.numel())
        else:
            eligible = torch.nonzero(split.image_mask).squeeze(1)
        labels = data.labels[eligible]
        counts = torch.bincount(labels, minlength=n_classes)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(eligible.numel()) - first[labels]
        width = int(counts.max()) if counts.numel() else 0
        table = torch.full((n_classes, max(width, 1)), -1, dtype=torch.int64)
        table[labels, rank] = eligible
        self.images = table[split.classes].numpy()
        self.counts = counts[split.classes].numpy()
        self.rotations = split.rotations.numpy()
        self.classes = split.classes.numpy()

    def __len__(self) -> int:
        return len(self.classes)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (item id, class row) pair of the split, row by row."""
        valid = self.images >= 0
        rows = np.broadcast_to(np.arange(len(self))[:, None], valid.shape)[valid]
        return (self.images * 4 + self.rotations[:, None])[valid], rows


@dataclass(frozen=True)
class EpisodePlan:
    """The integers an episode is made of: class rows and item ids, grouped by class."""

    class_ids: np.ndarray  # [N]
    support_items: np.ndarray  # [N*K]
    query_items: np.ndarray  # [N*Q]
    seed: int


class EpisodeSource(Protocol):
    data: ClassImages

    def __len__(self) -> int: ...
    def plan(self, index: int) -> EpisodePlan: ...
    def materialize(self, plan: EpisodePlan) -> Episode: ...
    def items(self) -> np.ndarray: ...  # every item id an episode can hold, sorted
    def __getitem__(self, index: int) -> Episode: ...


class _Materialize:
    data: ClassImages
    side: torch.Tensor | None = None  # [classes, D]: every class's description, for zero-shot episodes

    def materialize(self, plan: EpisodePlan) -> Episode:
        support_items = torch.from_numpy(plan.support_items)
        query_items = torch.from_numpy(plan.query_items)
        ways = len(plan.class_ids)
        images = render(self.data, np.concatenate([plan.support_items, plan.query_items]))
        n_support = support_items.numel()
        return Episode(
            support_x=images[:n_support],
            support_y=grouped_labels(ways, n_support // ways),
            query_x=images[n_support:],
            query_y=grouped_labels(ways, query_items.numel() // ways),
            class_ids=torch.from_numpy(plan.class_ids),
            seed=plan.seed,
            side=None if self.side is None else self.side[torch.from_numpy(plan.class_ids)],
            support_items=support_items,
            query_items=query_items,
        )

    # What each sampler defines: the number of episodes and the integers of each.
    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} must define __len__: how many episodes it holds")

    def plan(self, index: int) -> EpisodePlan:
        raise TypeError(f"{type(self).__name__} must define plan: the integers of episode {index}")

    def __getitem__(self, index: int) -> Episode:
        return self.materialize(self.plan(index))

    def __iter__(self) -> Iterator[Episode]:
        return (self[i] for i in range(len(self)))


class EpisodeSampler(_Materialize):
    """N-way K-shot episodes with Q queries per class from one split, seeded per episode.

    With ``side`` (one description per class of the dataset), each episode carries
    its classes' rows; with ``shots=0`` and ``side``, episodes are zero-shot.
    """

    def __init__(
        self,
        data: ClassImages,
        split: Split,
        ways: int,
        shots: int,
        queries: int,
        seed: int = 0,
        role: str = "test",
        name: str = "this split",
        side: torch.Tensor | None = None,
    ):
        for label, value, least in (("ways", ways, 1), ("shots", shots, 0), ("queries", queries, 0)):
            if value < least:
                raise FewshotError(f"--{label} must be at least {least}, got {value}")
        self.data, self.ways, self.shots, self.queries, self.seed, self.role = data, ways, shots, queries, seed, role
        if side is not None and side.shape[0] != len(data.classes):
            raise ValueError(f"side needs one row per class of the dataset ({len(data.classes)}), got {side.shape[0]}")
        self.side = side
        self.pool = ImagePool(data, split)
        if ways > len(self.pool):
            raise FewshotError(f"{name} has {len(self.pool)} classes, fewer than --ways {ways}: lower --ways")
        per_class = shots + queries
        usable = int(np.sort(self.pool.counts)[-ways])  # the ways-th largest class must hold enough images
        if per_class > usable:
            raise FewshotError(
                f"{name} has at most {usable} images in its {ways} fullest classes; --shots {shots} + "
                f"--queries {queries} = {per_class} is too many: lower --queries or --shots"
            )
        self._eligible = (
            None if per_class <= int(self.pool.counts.min()) else np.flatnonzero(self.pool.counts >= per_class)
        )
        if self._eligible is not None and len(self._eligible) < ways:
            raise FewshotError(
                f"{name} has only {len(self._eligible)} classes with {per_class} images; lower --ways or --queries"
            )
        self._width = self.pool.images.shape[1]
        self._full = bool((self.pool.counts == self._width).all())

    def __len__(self) -> int:
        return 2**63 - 1  # unbounded: any index is an episode

    def items(self) -> np.ndarray:
        return np.unique(self.pool.items()[0])

    def plan(self, index: int) -> EpisodePlan:
        rng = _generator(self.seed, self.role, index)
        if self._eligible is None:
            rows = rng.choice(len(self.pool), self.ways, replace=False)
        else:
            rows = self._eligible[rng.choice(len(self._eligible), self.ways, replace=False)]
        # K+Q distinct images per class: the smallest random keys among the class's own images.
        keys = rng.random((self.ways, self._width))
        if not self._full:  # classes with fewer images than the widest: their padding is never picked
            keys[np.arange(self._width)[None, :] >= self.pool.counts[rows, None]] = 2.0
        per_class = self.shots + self.queries
        picks = (
            np.argpartition(keys, per_class - 1, axis=1)[:, :per_class]
            if per_class < self._width
            else np.argsort(keys, axis=1)
        )
        images = np.take_along_axis(self.pool.images[rows], picks, axis=1)
        items = images * 4 + self.pool.rotations[rows, None]
        return EpisodePlan(
            class_ids=self.pool.classes[rows],
            support_items=items[:, : self.shots].reshape(-1),
            query_items=items[:, self.shots :].reshape(-1),
            seed=int(rng.integers(2**31 - 1)),
        )


class FixedSampler(_Materialize):
    """Serves a benchmark's fixed episodes (Lake's runs) through the sampler interface."""

    def __init__(self, data: ClassImages, fixed: FixedEpisodes):
        self.data, self.fixed = data, fixed
        self.ways = fixed.class_ids.shape[1]
        self.shots = fixed.support_items.shape[1] // self.ways
        self.queries = fixed.query_items.shape[1] // self.ways

    def __len__(self) -> int:
        return len(self.fixed)

    def items(self) -> np.ndarray:
        return np.unique(torch.cat([self.fixed.support_items.reshape(-1), self.fixed.query_items.reshape(-1)]).numpy())

    def plan(self, index: int) -> EpisodePlan:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return EpisodePlan(
            class_ids=self.fixed.class_ids[index].numpy(),
            support_items=self.fixed.support_items[index].numpy(),
            query_items=self.fixed.query_items[index].numpy(),
            seed=index,
        )


class ImageBatches:
    """Labelled image batches over a split's class rows: batch ``t`` is a pure function of (seed, t).

    Batches walk through a fresh seeded permutation of all items each epoch, so
    every image is seen once per epoch, and resuming at step t needs nothing but t.
    """

    def __init__(
        self,
        data: ClassImages,
        split: Split,
        batch_size: int,
        seed: int = 0,
        role: str = "train",
        augment: bool = False,
    ):
        if batch_size < 1:
            raise FewshotError(f"batch size must be at least 1, got {batch_size}")
        pool = ImagePool(data, split)
        items, rows = pool.items()
        self.items, self.labels = torch.from_numpy(items), torch.from_numpy(rows.copy())
        self.data, self.batch_size, self.seed, self.role, self.augment = data, batch_size, seed, role, augment
        self.num_classes = len(pool)
        self._epoch: tuple[int, torch.Tensor] | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._epoch is None or self._epoch[0] != epoch:
            order = _generator(self.seed, self.role, epoch).permutation(len(self.items))
            self._epoch = (epoch, torch.from_numpy(order))
        return self._epoch[1]

    def __getitem__(self, step: int) -> LabelledImages:
        n = len(self.items)
        positions = torch.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs = positions // n
        chosen = torch.empty_like(positions)
        for epoch in torch.unique(epochs).tolist():
            rows = epochs == epoch
            chosen[rows] = self._permutation(epoch)[positions[rows] % n]
        if not self.augment:
            return LabelledImages(render(self.data, self.items[chosen]), self.labels[chosen])
        pixels = augment(render(self.data, self.items[chosen], normalise=False), _generator(self.seed, "augment", step))
        return LabelledImages(normalised(self.data, pixels), self.labels[chosen])
