"""Model selection's views: validation data in place of the test split, and no test image or class anywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fewshot.core import selection
from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split
from fewshot.core.errors import FewshotError
from fewshot.run import experiment
from fewshot.run.training import Budget

CPU = torch.device("cpu")


def image_benchmark(target: bool = True) -> Benchmark:
    """A small shift scored image by image: 4 classes, source rows 0-79, target training 80-159, target test 160-199."""
    labels = torch.arange(200) % 4
    order = torch.argsort(labels, stable=True)
    data = ClassImages(
        torch.zeros(200, 1, 2, 2, dtype=torch.uint8), labels[order], tuple(ClassInfo(str(c), "x") for c in range(4))
    )
    role = torch.zeros(200, dtype=torch.long)
    role[80:160], role[160:] = 1, 2
    role = role[order]

    def images(r: int) -> Split:
        return Split.of(torch.arange(4), image_mask=role == r)

    splits = {"train": images(0), "test": images(2), **({"target": images(1)} if target else {})}
    return Benchmark("toy", "uda", data, splits, source="a", target="b", evaluation="images")


def rows(bench: Benchmark, role: str) -> set[int]:
    mask = bench.required_split(role).image_mask
    assert mask is not None
    return set(torch.nonzero(mask).squeeze(1).tolist())


def test_training_domain_holds_out_a_stratified_fifth_of_the_source_images_and_drops_the_test_split():
    bench = image_benchmark()
    seen = selection.view(bench, "training-domain")
    held = rows(seen, "test")
    assert len(held) == 16 and rows(seen, "val") == held  # 20% of the 80 source images
    assert held <= rows(bench, "train") and not held & rows(seen, "train")
    assert rows(seen, "train") | held == rows(bench, "train")
    assert np.bincount(seen.data.labels[sorted(held)].numpy()).tolist() == [4, 4, 4, 4]
    assert rows(seen, "target") == rows(bench, "target")  # the unlabelled target images stay
    assert not (rows(seen, "test") | rows(seen, "train") | rows(seen, "target")) & rows(bench, "test")
    assert seen.selection == "training-domain" and "held out" in seen.notes
    assert selection.view(bench, "training-domain").splits["test"].image_mask.equal(seen.splits["test"].image_mask)


def test_oracle_carves_the_labelled_target_validation_split_from_the_target_training_images():
    bench = image_benchmark()
    seen = selection.view(bench, "oracle", val_images=10)
    held = rows(seen, "test")
    assert len(held) == 10 and held <= rows(bench, "target")
    assert not held & rows(seen, "target") and rows(seen, "train") == rows(bench, "train")
    assert not held & rows(bench, "test")
    counts = np.bincount(seen.data.labels[sorted(held)].numpy(), minlength=4)
    assert sorted(counts.tolist()) == [2, 2, 3, 3]  # the classes in turn


def test_selection_refuses_what_it_cannot_do_in_one_line():
    bench = image_benchmark(target=False)
    with pytest.raises(FewshotError, match=r"no target training images .* offers --select training-domain"):
        selection.view(bench, "oracle")
    with pytest.raises(FewshotError, match="no selection regime: choose one of val-classes, training-domain, oracle"):
        selection.view(bench, "test-set")
    with pytest.raises(FewshotError, match=r"--val-images 80: .* between 4 .* and 79 of the 80"):
        selection.view(bench, "training-domain", val_images=80)
    with pytest.raises(FewshotError, match="one image of each class"):
        selection.view(bench, "training-domain", val_images=3)
    with pytest.raises(FewshotError, match="no validation classes"):
        selection.view(bench, "val-classes")


def test_val_classes_trains_on_the_selection_training_split_and_scores_the_validation_classes(omniglot):
    seen = selection.view(omniglot, "val-classes")
    assert seen.split("val") is seen.split("test") and seen.selection == "val-classes"
    pairs = {(int(c), int(r)) for c, r in zip(seen.splits["train"].classes, seen.splits["train"].rotations)}
    validation = {(int(c), int(r)) for c, r in zip(seen.splits["val"].classes, seen.splits["val"].rotations)}
    test = {(int(c), int(r)) for c, r in zip(omniglot.splits["test"].classes, omniglot.splits["test"].rotations)}
    assert len(pairs) == 4 * 1028 and len(validation) == 4 * 172  # Snell et al.'s train.txt and val.txt
    assert not pairs & validation and not (pairs | validation) & test
    with pytest.raises(FewshotError, match="--val-images 5: --select val-classes scores whole validation classes"):
        selection.view(omniglot, "val-classes", val_images=5)
    with pytest.raises(FewshotError, match="offers --select val-classes"):
        selection.view(omniglot, "training-domain")


@pytest.fixture(scope="module")
def omniglot(data_root):
    return experiment.open_benchmark("omniglot", "vinyals", data_root)


def poisoned(bench: Benchmark) -> Benchmark:
    """``bench`` with every test image replaced by noise: a run that reads one cannot give the clean run's numbers."""
    split = bench.required_split("test")
    test = torch.from_numpy(np.isin(bench.data.labels.numpy(), split.classes.numpy()))
    if split.image_mask is not None:
        test &= split.image_mask
    images = bench.data.images.clone()
    noise = torch.randint(0, 256, images[test].shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images[test] = noise
    assert not torch.equal(images, bench.data.images)
    # A key of its own: the embedding cache, keyed by the data's key, must not serve the clean images' embeddings
    return dataclasses.replace(
        bench, data=dataclasses.replace(bench.data, images=images, key=f"{bench.data.key}+noise")
    )


@pytest.mark.parametrize(
    ("learner", "dataset", "protocol", "regime", "adapt", "words", "steps", "least"),
    [
        ("finetune", "digits", "uda", "training-domain", "dann", {}, 400, 0.6),
        ("finetune", "digits", "uda", "oracle", "coral", {}, 200, 0.25),
        ("protonet", "omniglot", "vinyals", "val-classes", "none", {"ways": 5, "shots": 1, "episodes": 20}, 6, 0.5),
    ],
)
def test_a_selection_run_never_reads_a_test_image(
    monkeypatch, tmp_path, data_root, learner, dataset, protocol, regime, adapt, words, steps, least
):
    opened = experiment._benchmark

    def run(poison: bool, out: str) -> np.ndarray:
        if poison:
            monkeypatch.setattr(experiment, "_benchmark", lambda *a: poisoned(opened(*a)))
        bench = experiment.open_benchmark(dataset, protocol, data_root, select=regime)
        monkeypatch.setattr(experiment, "_benchmark", opened)
        cell = experiment.resolve_cell(bench, seed=3, **words)
        assert cell.split == "val"
        setup = experiment.make_setup(learner, {}, bench, cell, adapt=adapt)
        trained = experiment.ensure_trained(setup, Budget(steps=steps), CPU, out=tmp_path / out, progress=False)
        accuracies = experiment.evaluate_setup(setup, trained.learner, CPU).accuracies
        if dataset == "digits":  # the validation images are scored during training too: the learning curve
            assert trained.outcome is not None and trained.outcome.history[-1]["val_acc"] == accuracies.mean()
        return accuracies

    clean, dirty = run(False, "clean.pt"), run(True, "poisoned.pt")
    assert np.array_equal(clean, dirty)
    assert clean.mean() > least  # well above chance: its answers depend on the images it is shown
