"""Frozen against fine-tuned features across a domain shift.

Accuracy on the target test images against the number of labelled target training images, for the network trained
on the source domain frozen (a new classifier on its features), fine-tuned (every layer, from the source weights)
and trained from scratch on those images alone. The classes are the benchmark's training classes; the labelled
images are drawn from its unlabelled target training images by :func:`labelled_images`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fewshot.core.data import Benchmark, Split
from fewshot.core.errors import FewshotError

from .common import accuracy, new_network, pyplot, save_figure, train_network

FIELDS = ("labelled", "variant", "accuracy")

# The seed of the labelled draw: the one the digits' ``--target-labels`` draw uses, so the study's labelled
# images are the ones an adaptation method given that many target labels sees.
LABELLED_SEED = 1


def labelled_images(labels: np.ndarray, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` images of ``pool`` (sorted indices) whose labels are used: each class's images in a seeded random
    order, then the classes taken in turn, so every class gets ``count // classes`` or one more while it has any."""
    rng = np.random.default_rng(LABELLED_SEED)
    by_class = [rng.permutation(pool[labels[pool] == c]) for c in np.unique(labels[pool])]
    images = np.concatenate(by_class)
    rank = np.concatenate([np.arange(len(members)) for members in by_class])
    turn = np.concatenate([np.full(len(members), k) for k, members in enumerate(by_class)])
    return np.sort(images[np.lexsort((turn, rank))[:count]])


def freeze_study(
    bench: Benchmark,
    steps: int,
    labelled: tuple[int, ...],
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Rows of :data:`FIELDS`: the source network alone (0 labelled), then frozen, fine-tuned and scratch for each
    number of labelled target images."""
    train, test = bench.required_split("train"), bench.required_split("test")
    classes = len(train)
    source = train_network(new_network(bench, classes, seed), bench.data, train, steps, seed, bench.network)
    log(f"source network: {100 * accuracy(source, bench.data, test):.2f}% on the target test images")
    target_mask = bench.required_split("target").image_mask
    assert target_mask is not None, "the target split is the training classes' target-domain images (a mask)"
    pool = torch.nonzero(target_mask).squeeze(1).numpy()
    rows = [{"labelled": 0, "variant": "source only", "accuracy": accuracy(source, bench.data, test)}]
    depth = len(source.backbone.blocks)
    for count in labelled:
        if count > len(pool):
            raise FewshotError(f"{count} labelled target images asked for; the target domain has {len(pool)}")
        mask = torch.zeros(len(bench.data.labels), dtype=torch.bool)
        mask[torch.from_numpy(labelled_images(bench.data.labels.numpy(), pool, count))] = True
        few = Split.of(train.classes, train.rotations, image_mask=mask)
        for variant in ("frozen", "fine-tuned", "scratch"):
            if variant == "scratch":
                net = new_network(bench, classes, seed + 1)
            else:
                net = copy.deepcopy(source)
                torch.manual_seed(seed + 1)
                net.head.reset_parameters()
            frozen = depth if variant == "frozen" else 0
            net = train_network(net, bench.data, few, steps, seed + 1, bench.network, frozen, batch=min(64, count))
            score = accuracy(net, bench.data, test)
            rows.append({"labelled": count, "variant": variant, "accuracy": score})
            log(f"{count} labelled target images, {variant}: {100 * score:.2f}%")
    return rows


def plot_freeze(path: Path, rows: list[dict], title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, colour in (("frozen", "tab:blue"), ("fine-tuned", "tab:green"), ("scratch", "tab:gray")):
        points = sorted((r["labelled"], 100 * r["accuracy"]) for r in rows if r["variant"] == variant)
        ax.plot(*zip(*points), marker="o", color=colour, label=variant)
    source = next(r["accuracy"] for r in rows if r["variant"] == "source only")
    ax.axhline(100 * source, color="black", lw=1, ls=":", label="source only")
    ax.set_xscale("log")
    ax.set_xlabel("labelled target training images")
    ax.set_ylabel("accuracy on the target test images (%)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)
