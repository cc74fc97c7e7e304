"""Model selection on validation data only: a benchmark as selection may see it (``--select REGIME``).

A run made under a regime trains and scores on a *view* of its benchmark in
which the test images and test classes are not in any split: the view's
``test`` split is the validation split, so every protocol scores it unchanged,
and its runs are recorded with split ``val`` and the regime in ``selection``.
Hyperparameters, defaults and design variants are compared on such runs; the
final run on the test split is made once, with the settings they chose.

The regimes, in DomainBed's terms (Gulrajani and Lopez-Paz 2021) where they are
domain adaptation's:

* ``val-classes``: few-shot and zero-shot protocols with validation classes
  disjoint from the training classes. Training uses the classes the learner is
  fitted on while choices are made (``Benchmark.selection_train``: Snell et
  al.'s ``train.txt`` for Omniglot's ``vinyals``, whose final training set
  ``trainval.txt`` holds the validation characters), and the validation classes
  are scored.
* ``training-domain``: protocols that score images among the training classes
  (``Protocol.scores_training_classes``: domain adaptation's ``uda`` and
  ``target-only``): a stratified ``val_images`` of
  the labelled training images is held out from training and scored.
* ``oracle``: the same protocols with target training images: a labelled target
  validation split is carved from the target *training* images (never from its
  test images), held out from the unlabelled target images training sees, and
  scored. It assumes labels a real adaptation problem lacks, hence its name.

The held-out images are the same for every seed and every variant (a draw by a
fixed seed), so the variants a regime compares are scored on identical images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from fewshot.core import registry
from fewshot.core.data import Benchmark, Split
from fewshot.core.errors import FewshotError

REGIMES = {
    "val-classes": "trained without the validation classes, scored on them",
    "training-domain": "scored on labelled training images held out from training (DomainBed's training-domain "
    "validation)",
    "oracle": "scored on a labelled target validation split carved from the target training images, which "
    "training then no longer sees (DomainBed's oracle)",
}
HELD_OUT_FRACTION = 0.2  # of the pool a held-out split is carved from, when --val-images is not given (DomainBed's)
HELD_OUT_SEED = 0x5E1EC7


def offered(bench: Benchmark) -> tuple[str, ...]:
    """The regimes ``bench`` can be selected under."""
    regimes = []
    if bench.evaluation == "" and _disjoint_validation(bench):
        regimes.append("val-classes")
    if bench.evaluation and registry.protocol(bench.evaluation).scores_training_classes:
        regimes.append("training-domain")
        if bench.split("target") is not None:
            regimes.append("oracle")
    return tuple(regimes)


def view(bench: Benchmark, regime: str, val_images: int | None = None) -> Benchmark:
    """``bench`` as selection under ``regime`` sees it: its test split replaced by the validation split, the
    images that split holds out removed from training, and every test image and class in no split at all."""
    if regime not in REGIMES:
        raise FewshotError(f"--select {regime!r} is no selection regime: choose one of {', '.join(REGIMES)}")
    name = f"{bench.dataset}/{bench.protocol}"
    regimes = offered(bench)
    if regime not in regimes:
        why = {
            "val-classes": "has no validation classes apart from the classes it trains on",
            "training-domain": "scores classes it never trains on, so held-out training images cannot stand for them",
            "oracle": "has no target training images to carve a labelled target validation split from",
        }[regime]
        offer = f"; it offers --select {' or '.join(regimes)}" if regimes else "; it offers no selection regime"
        raise FewshotError(f"--select {regime}: {name} {why}{offer}")
    if val_images is not None and regime == "val-classes":
        raise FewshotError(
            f"--val-images {val_images}: --select val-classes scores whole validation classes; --val-images sizes "
            f"the held-out images of --select training-domain or oracle"
        )
    splits = {role: split for role, split in bench.splits.items() if role not in ("test", "val")}
    if regime == "val-classes":
        validation = bench.required_split("val")
        splits["train"] = splits.pop(bench.selection_train) if bench.selection_train != "train" else splits["train"]
        note = f"{len(splits['train'])} training classes, scored on {len(validation)} validation classes"
    else:
        pool_role = "train" if regime == "training-domain" else "target"
        pool = bench.required_split(pool_role)
        keep = splits.get("target_labelled") if regime == "oracle" else None  # --target-labels keep their images
        validation = held_out(bench, pool, val_images, f"--select {regime}", avoid=keep)
        assert validation.image_mask is not None, "held_out gives an image mask"
        splits[pool_role] = remaining = pool.restricted(~validation.image_mask)
        assert remaining.image_mask is not None, "restricted keeps a mask"
        which = "source training" if regime == "training-domain" and bench.source else "training"
        which = "target training" if regime == "oracle" else which
        held, kept = int(validation.image_mask.sum()), int(remaining.image_mask.sum())
        note = f"scored on {held} {which} images held out from training, which keeps the other {kept}"
    splits["val"] = splits["test"] = validation
    return dataclasses.replace(
        bench,
        splits=splits,
        fixed={},
        selection=regime,
        selection_train="train",
        notes=f"{bench.notes}; instead, under --select {regime}: {note}"
        if bench.notes
        else f"--select {regime}: {note}",
    )


def held_out(bench: Benchmark, pool: Split, count: int | None, option: str, avoid: Split | None = None) -> Split:
    """``count`` images of ``pool`` (default: ``HELD_OUT_FRACTION`` of it), drawn by ``HELD_OUT_SEED`` class by
    class in turn, so that every class gets ``count // classes`` or one more; never one of ``avoid``'s images."""
    rows = _image_rows(bench, pool)
    if avoid is not None:
        rows = np.setdiff1d(rows, _image_rows(bench, avoid))
    labels = bench.data.labels.numpy()[rows]
    classes = np.unique(labels)
    if count is None:
        count = max(len(classes), round(HELD_OUT_FRACTION * len(rows)))
    if count < len(classes) or count >= len(rows):
        raise FewshotError(
            f"--val-images {count}: {option} holds out between {len(classes)} (one image of each class) and "
            f"{len(rows) - 1} of the {len(rows)} images it may use (fewer than all, so training keeps some)"
        )
    taken = classes_in_turn(rows, labels, count, np.random.default_rng(HELD_OUT_SEED))
    mask = torch.zeros(len(bench.data.labels), dtype=torch.bool)
    mask[torch.as_tensor(taken)] = True
    return Split(pool.classes, pool.rotations, mask)


def classes_in_turn(rows: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` of ``rows`` (whose classes are ``labels``), each class shuffled by ``rng`` in the order of its label,
    then taken one image per class in turn, so that every class gets ``count // classes`` or one more; a class with
    no image left is passed over."""
    by_class = [rng.permutation(rows[labels == c]) for c in np.unique(labels)]
    taken: list[int] = []
    depth = 0
    while len(taken) < count and any(depth < len(images) for images in by_class):
        for images in by_class:
            if depth < len(images) and len(taken) < count:
                taken.append(int(images[depth]))
        depth += 1
    return np.array(taken, dtype=np.int64)


def _image_rows(bench: Benchmark, split: Split) -> np.ndarray:
    """The dataset rows of ``split``'s images (its classes' images, within its image mask)."""
    in_classes = np.isin(bench.data.labels.numpy(), split.classes.numpy())
    if split.image_mask is not None:
        in_classes &= split.image_mask.numpy()
    return np.flatnonzero(in_classes)


def _disjoint_validation(bench: Benchmark) -> bool:
    validation, train = bench.split("val"), bench.split(bench.selection_train)
    if validation is None or train is None or len(validation) == 0:
        return False
    pairs = {(int(c), int(r)) for c, r in zip(train.classes, train.rotations)}
    return not any((int(c), int(r)) in pairs for c, r in zip(validation.classes, validation.rotations))
