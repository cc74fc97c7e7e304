"""Import records' channel statistics: the training images' means and deviations, the same whether read from
the decoded arrays or, chunk by chunk, from the images file an import streamed them to."""

import numpy as np
import pytest
import torch

from fewshot.core.data import ClassImages, ClassInfo
from fewshot.core.dataset import channel_statistics


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_channel_statistics_are_the_training_images_whatever_they_are_read_from(tmp_path, chunk):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5 * 6, 3, 4, 4), dtype=np.uint8)
    classes = tuple(ClassInfo(f"c{i}", "") for i in range(5))
    data = ClassImages(torch.from_numpy(pixels), torch.arange(5).repeat_interleave(6), classes, key="k")
    record = {"splits": {"p": {"train": ["c0", "c2", "c3"], "val": ["c1"], "test": ["c4"]}}}
    train = pixels[np.r_[0:6, 12:24]].astype(np.float64) / 255
    file = tmp_path / "images.npy"
    np.save(file, pixels)
    for source in (None, file):
        stats = channel_statistics(data, record, source, chunk)["normalisation"]
        assert np.allclose(stats["mean"], train.mean((0, 2, 3)), atol=1e-6), source
        assert np.allclose(stats["std"], train.std((0, 2, 3)), atol=1e-6), source
        assert stats["over"] == "the 3 training classes of protocol p"
    grey = ClassImages(torch.from_numpy(pixels[:, :1].copy()), data.labels, classes, key="k")
    assert channel_statistics(grey, record) == {}, "grey images are left as they are"
