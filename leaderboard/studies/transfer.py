"""Which layers transfer: Yosinski, Clune, Bengio and Lipson 2014, "How transferable are features in deep neural
networks?" (NIPS), figure 2.

The training classes are split at random into halves A and B (by a fixed seed), each class's images into training
and held-out ones. A base network is trained on each half. For each cut n of the backbone (0 to its depth), four
networks learn task B: BnB (the first n blocks copied from baseB and frozen, the rest trained anew), BnB+ (the
copied blocks fine-tuned too), AnB and AnB+ (copied from baseA). Accuracy on B's held-out images against n, as in
the paper's figure 2; baseB's accuracy is the horizontal line. BnB at n = 0 is the base network retrained.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fewshot.core.data import Benchmark, ClassImages, Split

from .common import accuracy, new_network, pyplot, save_figure, train_network

FIELDS = ("n", "variant", "accuracy")


def held_out_masks(
    data: ClassImages, classes: np.ndarray, held_out: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image masks: for each class, ``held_out`` images (seeded) for testing and the rest for training."""
    rng = np.random.default_rng(seed)
    test = torch.zeros(len(data.labels), dtype=torch.bool)
    labels = data.labels.numpy()
    for c in classes:
        rows = np.flatnonzero(labels == c)
        test[rng.choice(rows, min(held_out, len(rows) - 1), replace=False)] = True
    chosen = torch.from_numpy(np.isin(labels, classes))
    return chosen & ~test, chosen & test


def transfer_study(
    bench: Benchmark,
    steps: int,
    seed: int = 0,
    held_out: int = 5,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Rows of :data:`FIELDS`: baseB at every cut, then BnB, BnB+, AnB and AnB+ for each cut n."""
    classes = bench.required_split("train").classes.numpy()
    shuffled = np.random.default_rng(seed).permutation(classes)
    halves = {"A": np.sort(shuffled[: len(shuffled) // 2]), "B": np.sort(shuffled[len(shuffled) // 2 :])}
    splits = {}
    for name, members in halves.items():
        train_mask, test_mask = held_out_masks(bench.data, members, held_out, seed)
        splits[name] = (Split.of(members, image_mask=train_mask), Split.of(members, image_mask=test_mask))
    base = {}
    for name in ("A", "B"):
        net = new_network(bench, len(halves[name]), seed + (name == "B"))
        base[name] = train_network(net, bench.data, splits[name][0], steps, seed, bench.network)
        log(f"base{name}: {100 * accuracy(base[name], bench.data, splits[name][1]):.2f}% on its held-out images")
    depth = len(base["B"].backbone.blocks)
    base_b = accuracy(base["B"], bench.data, splits["B"][1])
    rows = [{"n": n, "variant": "baseB", "accuracy": base_b} for n in range(depth + 1)]
    for n in range(depth + 1):
        for source in ("B", "A"):
            for tuned in (False, True):
                variant = f"{source}nB{'+' if tuned else ''}"
                net = new_network(bench, len(halves["B"]), seed + 10 + n)
                for i in range(n):
                    net.backbone.blocks[i].load_state_dict(base[source].backbone.blocks[i].state_dict())
                frozen = 0 if tuned else n
                net = train_network(net, bench.data, splits["B"][0], steps, seed + 1, bench.network, frozen)
                score = accuracy(net, bench.data, splits["B"][1])
                rows.append({"n": n, "variant": variant, "accuracy": score})
                log(f"n={n} {variant}: {100 * score:.2f}%")
    return rows


def plot_transfer(path: Path, rows: list[dict], title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    base = next(r["accuracy"] for r in rows if r["variant"] == "baseB")
    ax.axhline(100 * base, color="black", lw=1, label="baseB")
    styles = {
        "BnB": ("tab:blue", "o", "-"),
        "BnB+": ("tab:blue", "s", "--"),
        "AnB": ("tab:red", "o", "-"),
        "AnB+": ("tab:red", "s", "--"),
    }
    for variant, (colour, marker, line) in styles.items():
        points = sorted((r["n"], 100 * r["accuracy"]) for r in rows if r["variant"] == variant)
        ax.plot(*zip(*points), color=colour, marker=marker, ls=line, label=variant)
    ax.set_xticks(sorted({r["n"] for r in rows}))
    ax.set_xlabel("layer n at which the network is chopped and retrained")
    ax.set_ylabel("accuracy on B's held-out images (%)")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path)
