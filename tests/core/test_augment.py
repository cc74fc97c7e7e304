"""Training augmentation: a pure function of its random stream, the identity when every draw is neutral, a flip
that mirrors, crops that zoom, and training batches that are the same however often they are drawn."""

import numpy as np
import pytest
import torch

from fewshot.core import augment as augment_module
from fewshot.core.augment import augment
from fewshot.core.data import ClassImages, ClassInfo, Split
from fewshot.core.sampler import ImageBatches, render


def images(n=6, side=16):
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    base = torch.stack([x, y, (x + y) / 2])  # left-right and top-bottom gradients: a flip or a zoom shows
    return (base[None] * torch.linspace(0.5, 1, n).view(n, 1, 1, 1)).contiguous()


def test_the_same_stream_gives_the_same_batch_and_another_another():
    x = images()
    a = augment(x.clone(), np.random.default_rng(3))
    assert torch.equal(a, augment(x.clone(), np.random.default_rng(3)))
    assert not torch.allclose(a, augment(x.clone(), np.random.default_rng(4)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_neutral_draws_give_each_image_or_its_mirror(monkeypatch):
    """Crop of the whole image, no jitter: every output is its input, or its input flipped left to right."""
    monkeypatch.setattr(augment_module, "SCALE", (1.0, 1.0))
    monkeypatch.setattr(augment_module, "RATIO", (1.0, 1.0))
    monkeypatch.setattr(augment_module, "JITTER", 0.0)
    x = images(n=32)
    out = augment(x.clone(), np.random.default_rng(0))
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 8 < sum(mirrored) < 24, "about half are flipped"


def test_a_small_crop_zooms_in(monkeypatch):
    """A box of 8% of the area stretched to the whole image: neighbouring pixels differ less than before."""
    monkeypatch.setattr(augment_module, "SCALE", (0.08, 0.08))
    monkeypatch.setattr(augment_module, "JITTER", 0.0)
    x = images(n=8, side=32)
    out = augment(x.clone(), np.random.default_rng(1))
    step_before = (x[..., 1:] - x[..., :-1]).abs().mean()
    step_after = (out[..., 1:] - out[..., :-1]).abs().mean()
    assert step_after < 0.5 * step_before


def test_jitter_keeps_the_colour():
    x = images()
    grey = (x * torch.tensor(augment_module.LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    rng = np.random.default_rng(0)
    assert not torch.allclose(x, grey.expand_as(x))
    assert augment_module.JITTER < 1, "saturation factors stay positive: colour is never inverted"
    out = augment(x.clone(), rng)
    assert out.std(1).mean() > 0, "colour remains"


@pytest.fixture
def data():
    pixels = (torch.arange(4 * 8 * 3 * 8 * 8) % 251).to(torch.uint8).view(32, 3, 8, 8)
    classes = tuple(ClassInfo(f"c{i}", "") for i in range(4))
    return ClassImages(pixels, torch.arange(4).repeat_interleave(8), classes, key="t")


def test_augmented_training_batches_are_a_function_of_seed_and_step(data):
    split = Split.of([0, 1, 2, 3])
    plain = ImageBatches(data, split, 5, seed=1)
    augmented = ImageBatches(data, split, 5, seed=1, augment=True)
    again = ImageBatches(data, split, 5, seed=1, augment=True)
    assert torch.equal(augmented[3].x, again[3].x) and torch.equal(augmented[3].y, plain[3].y)
    assert not torch.allclose(augmented[3].x, plain[3].x)
    assert not torch.allclose(augmented[3].x, augmented[4].x[: len(augmented[3].x)])


def test_normalised_images_have_the_statistics_they_are_normalised_by(data):
    pixels = data.images.float() / 255
    mean, std = pixels.mean((0, 2, 3)), pixels.std((0, 2, 3), unbiased=False)
    normalised = ClassImages(
        data.images, data.labels, data.classes, key="t", normalisation=(tuple(mean.tolist()), tuple(std.tolist()))
    )
    out = render(normalised, np.arange(32) * 4)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(render(data, np.arange(32) * 4), pixels), "a dataset without statistics is left in [0, 1]"
