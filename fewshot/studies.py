"""Two studies of which layers transfer, each writing a CSV and a PNG.

``transfer`` (Yosinski, Clune, Bengio and Lipson 2014, "How transferable are
features in deep neural networks?", NIPS): the training classes are split at
random into halves A and B (by a fixed seed), each class's images into
training and held-out ones. A base network is trained on each half. For each
cut n of the backbone (0 to its depth), four networks learn task B: BnB (the
first n blocks copied from baseB and frozen, the rest trained anew), BnB+ (the
copied blocks fine-tuned too), AnB and AnB+ (copied from baseA). Accuracy on
B's held-out images against n, as in the paper's figure 2; baseB's accuracy is
the horizontal line. BnB at n = 0 is the base network retrained.

``freeze``: on a digit shift, accuracy on the target test images against the
number of labelled target training images, for the source-trained network
frozen (a new classifier on its features), fine-tuned (every layer, from the
source weights) and trained from scratch on those images alone.

Both train with the fine-tuning baseline's recipe (its network and optimiser
for the dataset) for a fixed number of steps, all randomness seeded.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from fewshot.core.backbones import make_backbone
from fewshot.baselines.finetune import pretraining_optimizer
from fewshot.core.data import Benchmark, ClassImages, Split, atomic_write
from fewshot.core.errors import FewshotError
from fewshot.run.harness import predicted_classes
from fewshot.core.learner import classification_step
from fewshot.core.sampler import ImageBatches, ImagePool


@dataclass
class Network:
    backbone: nn.Module
    head: nn.Linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def parameters(self, frozen_blocks: int = 0):
        tuned = [p for block in self.backbone.blocks[frozen_blocks:] for p in block.parameters()]
        return tuned + list(self.head.parameters())


def new_network(bench: Benchmark, classes: int, seed: int) -> Network:
    torch.manual_seed(seed)
    backbone, width = make_backbone(bench.network, bench.data.image_shape)
    return Network(backbone, nn.Linear(width, classes))


def train_network(net: Network, data: ClassImages, split: Split, steps: int, seed: int, network: str,
                  frozen_blocks: int = 0, batch: int = 64) -> Network:
    """Cross-entropy training of the blocks after ``frozen_blocks`` and the head on ``split``'s images."""
    optimizer = pretraining_optimizer(net.parameters(frozen_blocks), network, "auto", 0.0)
    batches = ImageBatches(data, split, batch, seed)
    net.backbone.train()
    for block in net.backbone.blocks[:frozen_blocks]:
        block.eval()  # frozen blocks keep their batch-norm statistics as well as their weights
    for step in range(steps):
        classification_step(optimizer, net, batches[step])
    net.backbone.eval()
    return net


@torch.no_grad()
def accuracy(net: Network, data: ClassImages, split: Split, batch: int = 500) -> float:
    items, rows = ImagePool(data, split).items()
    net.backbone.eval()
    return float((predicted_classes(net, data, items, batch) == rows).mean())


def held_out_masks(data: ClassImages, classes: np.ndarray, held_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image masks: for each class, ``held_out`` images (seeded) for testing and the rest for training."""
    rng = np.random.default_rng(seed)
    test = torch.zeros(len(data.labels), dtype=torch.bool)
    labels = data.labels.numpy()
    for c in classes:
        rows = np.flatnonzero(labels == c)
        test[rng.choice(rows, min(held_out, len(rows) - 1), replace=False)] = True
    chosen = torch.from_numpy(np.isin(labels, classes))
    return chosen & ~test, chosen & test


TRANSFER_FIELDS = ("n", "variant", "accuracy")


def transfer_study(bench: Benchmark, steps: int, seed: int = 0, held_out: int = 5,
                   log: Callable[[str], None] = lambda line: None) -> list[dict]:
    classes = bench.split("train").classes.numpy()
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(classes)
    halves = {"A": np.sort(shuffled[: len(shuffled) // 2]), "B": np.sort(shuffled[len(shuffled) // 2:])}
    splits = {}
    for name, members in halves.items():
        train_mask, test_mask = held_out_masks(bench.data, members, held_out, seed)
        splits[name] = (Split.of(members, image_mask=train_mask), Split.of(members, image_mask=test_mask))
    count = len(halves["B"])
    base = {}
    for name in ("A", "B"):
        base[name] = train_network(new_network(bench, len(halves[name]), seed + (name == "B")), bench.data,
                                   splits[name][0], steps, seed, bench.network)
        log(f"base{name}: {100 * accuracy(base[name], bench.data, splits[name][1]):.2f}% on its held-out images")
    depth = len(base["B"].backbone.blocks)
    rows = [{"n": n, "variant": "baseB", "accuracy": accuracy(base["B"], bench.data, splits["B"][1])}
            for n in range(depth + 1)]
    for n in range(depth + 1):
        for source in ("B", "A"):
            for tuned in (False, True):
                variant = f"{source}nB{'+' if tuned else ''}"
                net = new_network(bench, count, seed + 10 + n)
                for i in range(n):
                    net.backbone.blocks[i].load_state_dict(base[source].backbone.blocks[i].state_dict())
                net = train_network(net, bench.data, splits["B"][0], steps, seed + 1, bench.network,
                                    frozen_blocks=0 if tuned else n)
                score = accuracy(net, bench.data, splits["B"][1])
                rows.append({"n": n, "variant": variant, "accuracy": score})
                log(f"n={n} {variant}: {100 * score:.2f}%")
    return rows


def freeze_study(bench: Benchmark, steps: int, labelled: tuple[int, ...], seed: int = 0,
                 log: Callable[[str], None] = lambda line: None) -> list[dict]:
    from fewshot.tasks.digits import labelled_subset

    train, test = bench.split("train"), bench.split("test")
    source = train_network(new_network(bench, 10, seed), bench.data, train, steps, seed, bench.network)
    log(f"source network: {100 * accuracy(source, bench.data, test):.2f}% on the target test images")
    pool = torch.nonzero(bench.split("target").image_mask).squeeze(1).numpy()
    rows = [{"labelled": 0, "variant": "source only", "accuracy": accuracy(source, bench.data, test)}]
    depth = len(source.backbone.blocks)
    for count in labelled:
        if count > len(pool):
            raise FewshotError(f"{count} labelled target images asked for; the target domain has {len(pool)}")
        mask = torch.zeros(len(bench.data.labels), dtype=torch.bool)
        mask[torch.from_numpy(labelled_subset(bench.data.labels.numpy(), pool, count))] = True
        few = Split.of(np.arange(10), image_mask=mask)
        for variant in ("frozen", "fine-tuned", "scratch"):
            if variant == "scratch":
                net = new_network(bench, 10, seed + 1)
            else:
                net = copy.deepcopy(source)
                torch.manual_seed(seed + 1)
                net.head.reset_parameters()
            net = train_network(net, bench.data, few, steps, seed + 1, bench.network,
                                frozen_blocks=depth if variant == "frozen" else 0, batch=min(64, count))
            score = accuracy(net, bench.data, test)
            rows.append({"labelled": count, "variant": variant, "accuracy": score})
            log(f"{count} labelled target images, {variant}: {100 * score:.2f}%")
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(rows[0])

    def write(f) -> None:
        text = [",".join(fields)] + [",".join(f"{r[k]:.4f}" if isinstance(r[k], float) else str(r[k]) for k in fields)
                                     for r in rows]
        f.write(("\n".join(text) + "\n").encode())

    atomic_write(path, write)


def plot_transfer(path: Path, rows: list[dict], title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    base = [r["accuracy"] for r in rows if r["variant"] == "baseB"][0]
    ax.axhline(100 * base, color="black", lw=1, label="baseB")
    styles = {"BnB": ("tab:blue", "o", "-"), "BnB+": ("tab:blue", "s", "--"), "AnB": ("tab:red", "o", "-"),
              "AnB+": ("tab:red", "s", "--")}
    for variant, (colour, marker, line) in styles.items():
        points = sorted((r["n"], 100 * r["accuracy"]) for r in rows if r["variant"] == variant)
        ax.plot(*zip(*points), color=colour, marker=marker, ls=line, label=variant)
    ax.set_xticks(sorted({r["n"] for r in rows}))
    ax.set_xlabel("layer n at which the network is chopped and retrained")
    ax.set_ylabel("accuracy on B's held-out images (%)")
    ax.set_title(title)
    ax.legend()
    _save(fig, path, plt)


def plot_freeze(path: Path, rows: list[dict], title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, colour in (("frozen", "tab:blue"), ("fine-tuned", "tab:green"), ("scratch", "tab:gray")):
        points = sorted((r["labelled"], 100 * r["accuracy"]) for r in rows if r["variant"] == variant)
        ax.plot(*zip(*points), marker="o", color=colour, label=variant)
    source = [r["accuracy"] for r in rows if r["variant"] == "source only"][0]
    ax.axhline(100 * source, color="black", lw=1, ls=":", label="source only")
    ax.set_xscale("log")
    ax.set_xlabel("labelled target training images")
    ax.set_ylabel("accuracy on the target test images (%)")
    ax.set_title(title)
    ax.legend()
    _save(fig, path, plt)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
