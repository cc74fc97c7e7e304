import numpy as np
import pytest
import torch

from fewshot.errors import FewshotError
from fewshot.tasks.digits import load_domain, paired

MNIST_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
USPS_TRAIN = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
USPS_TEST = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]


def _counts(data, role):
    return torch.bincount(data.labels[data.extras[role]], minlength=10).tolist()


def test_the_digits_decode_to_the_counts_of_the_data_readme(data_root):
    mnist, usps, mnist_m = (load_domain(data_root, d) for d in ("mnist", "usps", "mnist-m"))
    assert (mnist.class_counts().tolist(), _counts(mnist, "test")) == (MNIST_COUNTS, [200] * 10)
    assert (_counts(usps, "train"), _counts(usps, "test")) == (USPS_TRAIN, USPS_TEST)
    assert (len(mnist_m.extras["train"]), len(mnist_m.extras["test"])) == (10000, 9001)
    assert mnist.image_shape == usps.image_shape == (1, 28, 28) and mnist_m.image_shape == (3, 28, 28)


def test_the_mnist_split_is_fixed_and_disjoint(data_root):
    first, again = load_domain(data_root, "mnist"), load_domain(data_root, "mnist")
    assert torch.equal(first.extras["test"], again.extras["test"])
    assert not np.intersect1d(first.extras["test"].numpy(), first.extras["train"].numpy()).size


def test_pairing_a_grey_and_a_colour_domain_repeats_the_grey_channels(data_root):
    mnist, mnist_m = load_domain(data_root, "mnist"), load_domain(data_root, "mnist-m")
    pair = paired({"mnist": mnist, "mnist-m": mnist_m})
    assert pair.image_shape == (3, 28, 28) and pair.domain_names == ("mnist", "mnist-m")
    grey = pair.images[pair.extras["mnist_train"]]
    assert torch.equal(grey[:, 0], grey[:, 2])
    assert len(pair.extras["mnist-m_test"]) == 9001 and bool((pair.domains[pair.extras["mnist-m_test"]] == 1).all())
    assert torch.bincount(pair.labels[pair.domains == 0], minlength=10).tolist() == MNIST_COUNTS


def test_a_corrupt_or_missing_file_is_refused(tmp_path, data_root):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "usps.npz").write_bytes((data_root / "digits" / "usps.npz").read_bytes()[:5000])
    with pytest.raises(FewshotError, match="usps.npz is corrupt"):
        load_domain(tmp_path, "usps")
    with pytest.raises(FewshotError, match="mnist10k.npz is missing"):
        load_domain(tmp_path, "mnist")
    with pytest.raises(FewshotError, match="unknown digit domain 'svhn'"):
        load_domain(tmp_path, "svhn")
