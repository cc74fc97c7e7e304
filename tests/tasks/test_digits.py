import numpy as np
import pytest
import torch

from fewshot.core.errors import FewshotError
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
    with pytest.raises(FewshotError, match=r"usps.npz is corrupt"):
        load_domain(tmp_path, "usps")
    with pytest.raises(FewshotError, match=r"mnist10k.npz is missing"):
        load_domain(tmp_path, "mnist")
    with pytest.raises(FewshotError, match="unknown digit domain 'svhn'"):
        load_domain(tmp_path, "svhn")


def _domain_of(bench, role):
    mask = bench.split(role).image_mask
    return set(bench.data.domains[mask].tolist()), int(mask.sum())


def test_uda_trains_on_source_images_adapts_to_target_training_images_and_tests_on_target_test_images(data_root):
    from fewshot.run.experiment import open_benchmark

    bench = open_benchmark("digits", "uda", data_root, source="mnist", target="mnist-m")
    assert bench.data.domain_names == ("mnist", "mnist-m") and bench.network == "lenet"
    assert _domain_of(bench, "train") == ({0}, 8000)
    assert _domain_of(bench, "target") == ({1}, 10000)
    assert _domain_of(bench, "test") == ({1}, 9001)
    test, target = bench.split("test").image_mask, bench.split("target").image_mask
    assert not bool((test & target).any())
    ceiling = open_benchmark("digits", "target-only", data_root, source="mnist", target="mnist-m")
    assert _domain_of(ceiling, "train") == ({1}, 10000) and torch.equal(ceiling.split("test").image_mask, test)


def test_mnist_usps_shifts_sample_tzeng_et_al_s_2000_and_1800_training_images_once(data_root):
    from fewshot.run.experiment import open_benchmark

    forward = open_benchmark("digits", "uda", data_root, source="mnist", target="usps")
    backward = open_benchmark("digits", "uda", data_root, source="usps", target="mnist")
    assert _domain_of(forward, "train") == ({0}, 2000) and _domain_of(forward, "target") == ({1}, 1800)
    assert _domain_of(forward, "test") == ({1}, 2007)
    assert _domain_of(backward, "train") == ({0}, 1800) and _domain_of(backward, "target") == ({1}, 2000)
    assert _domain_of(backward, "test") == ({1}, 2000)
    again = open_benchmark("digits", "uda", data_root, source="mnist", target="usps")
    assert torch.equal(again.split("train").image_mask, forward.split("train").image_mask)


def test_labelled_target_images_are_a_balanced_seeded_subset_of_the_target_pool(data_root):
    from fewshot.run.experiment import open_benchmark

    bench = open_benchmark("digits", "uda", data_root, source="mnist", target="usps", target_labels=25)
    labelled = bench.split("target_labelled").image_mask
    assert int(labelled.sum()) == 25 and not bool((labelled & ~bench.split("target").image_mask).any())
    counts = torch.bincount(bench.data.labels[labelled], minlength=10)
    assert counts.max() - counts.min() <= 1
    with pytest.raises(FewshotError, match="--target-labels 5000: the target domain has 1800"):
        open_benchmark("digits", "uda", data_root, source="mnist", target="usps", target_labels=5000)


def test_the_pixel_mean_is_the_training_images_of_both_domains_and_the_lenet_subtracts_it_when_asked(data_root):
    from fewshot.core.backbones import LeNet
    from fewshot.core.sampler import ImagePool
    from fewshot.run import experiment

    bench = experiment.open_benchmark("digits", "uda", data_root)
    rows = np.concatenate([ImagePool(bench.data, bench.splits[r]).items()[0] // 4 for r in ("train", "target")])
    expected = bench.data.images[torch.as_tensor(rows)].double().mean((0, 2, 3)) / 255
    assert np.allclose(bench.pixel_mean, expected.numpy(), atol=1e-6)
    test = ImagePool(bench.data, bench.splits["test"]).items()[0] // 4
    assert not np.isin(test, rows).any()  # never a test image
    only = experiment.open_benchmark("digits", "target-only", data_root)
    assert only.pixel_mean != bench.pixel_mean and len(only.pixel_mean) == 3
    plain, centred = LeNet(3, 28), LeNet(3, 28, pixel_mean=bench.pixel_mean)
    centred.load_state_dict(plain.state_dict())  # the mean is no weight: the same checkpoint serves both
    x = torch.rand(4, 3, 28, 28)
    shifted = x - torch.tensor(bench.pixel_mean, dtype=torch.float32).view(1, 3, 1, 1)
    assert torch.equal(centred(x), plain(shifted)) and torch.equal(
        centred.features(x, 0, 2), plain.features(shifted, 0, 2)
    )
    setup = experiment.make_setup("finetune", {"centre": "on"}, bench, experiment.resolve_cell(bench))
    learner = experiment.build(setup, torch.device("cpu"))
    assert torch.equal(learner.backbone.pixel_mean.flatten(), torch.tensor(bench.pixel_mean, dtype=torch.float32))
    default = experiment.build(experiment.make_setup("finetune", {}, bench, setup.cell), torch.device("cpu"))
    assert default.backbone.pixel_mean.numel() == 0  # off until validation says otherwise
