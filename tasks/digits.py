"""Handwritten digit domains for domain adaptation: MNIST, USPS and MNIST-M.

Read in place from the data root's ``digits/`` folder (see
``../shared/data/README.md``), each domain decoded once into the cache as
uint8 images of 28x28 sorted by digit, with its train and test images:

* ``mnist``: 10,000 real MNIST digits (the first 10,000 of MNIST's training
  set). The file has no split; 200 digits of each class, chosen by a fixed
  seed, are the test set (2,000), the other 8,000 train.
* ``usps``: the complete USPS set in its official split (7,291 train, 2,007
  test), 16x16 upsampled to 28x28 (bilinear, antialiased).
* ``mnist-m``: MNIST-M (Ganin and Lempitsky 2015), colour: the first 10,000
  training images and the whole test set (9,001).

``paired`` joins domains into one dataset whose ``domains`` say which image
came from where; grey domains are repeated to three channels when a colour
domain takes part.

Protocols (``--source`` / ``--target``, default MNIST -> MNIST-M):

* ``uda``: unsupervised domain adaptation. Labelled source training images,
  unlabelled target training images (split ``target``), scored on every target
  test image. A shift between MNIST and USPS uses Tzeng et al. 2017's sizes:
  2,000 MNIST and 1,800 USPS training images, sampled once by a fixed seed;
  other shifts use every training image of both domains.
* ``target-only``: the ceiling: the same network trained on the shift's target
  training images with their labels, scored on the same target test images.

Both use Ganin et al.'s small digit network (``fewshot.core.backbones.LeNet``).
``Benchmark.pixel_mean`` is the per-channel mean of the training images (of both
domains under ``uda``), which Ganin et al. subtract from the input (``--hp
centre=on`` of the fine-tuning learner).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split, cached, file_digest
from fewshot.core.dataset import Dataset
from fewshot.core.errors import FewshotError
from fewshot.core.selection import classes_in_turn

VERSION = 1
SIZE = 28
DOMAINS = ("mnist", "usps", "mnist-m")
FILES = {
    "mnist": ("mnist10k.npz", "7d236ec3f8adeb199c2317b96fd00417"),
    "usps": ("usps.npz", "227240b224e47d27ecc436c9786c0607"),
    "mnist-m": ("mnist_m.npz", "2bf00d116d7117ae5f6deaebea57fe35"),
}
MNIST_TEST_PER_CLASS = 200
SPLIT_SEED = 0
DIGITS = tuple(ClassInfo(str(d), "digits") for d in range(10))


def domain_file(root: Path, domain: str) -> Path:
    if domain not in FILES:
        raise FewshotError(f"unknown digit domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    path = Path(root) / "digits" / FILES[domain][0]
    if not path.is_file():
        raise FewshotError(f"{path} is missing: set FEWSHOT_DATA to a folder that holds digits/{FILES[domain][0]}")
    return path


def load_domain(root: Path, domain: str) -> ClassImages:
    """One domain's images sorted by digit; ``extras`` hold the indices of its ``train`` and ``test`` images."""
    path = domain_file(root, domain)
    digest = file_digest(path)
    if digest != FILES[domain][1]:
        raise FewshotError(
            f"{path} is corrupt or not the expected release (md5 {digest}, expected "
            f"{FILES[domain][1]}); restore it from ../shared/data"
        )
    return cached(f"digits-{domain}", VERSION, SIZE, lambda: _decode(path, domain), md5=digest)


def _decode(path: Path, domain: str) -> ClassImages:
    try:
        with np.load(path, allow_pickle=False) as z:
            if domain == "mnist":
                parts = {"all": (z["x"], z["y"])}
            else:
                parts = {"train": (z["x_train"], z["y_train"]), "test": (z["x_test"], z["y_test"])}
    except (OSError, ValueError, KeyError) as err:
        raise FewshotError(f"{path} cannot be read ({err}); restore it from ../shared/data") from None
    images = np.concatenate([x for x, _ in parts.values()])
    labels = np.concatenate([y for _, y in parts.values()]).astype(np.int64)
    if domain == "mnist":
        is_test = _seeded_test_digits(labels)
    else:
        is_test = np.repeat([False, True], [len(parts["train"][1]), len(parts["test"][1])])
    pixels = torch.from_numpy(images)
    pixels = pixels.permute(0, 3, 1, 2) if pixels.dim() == 4 else pixels.unsqueeze(1)
    if pixels.shape[-1] != SIZE:
        upsampled = F.interpolate(
            pixels.float(), size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False
        )
        pixels = upsampled.round().clamp(0, 255).to(torch.uint8)
    order = np.argsort(labels, kind="stable")
    test_sorted = is_test[order]
    return ClassImages(
        images=pixels[torch.from_numpy(order)].contiguous(),
        labels=torch.from_numpy(labels[order]),
        classes=DIGITS,
        extras={
            "train": torch.from_numpy(np.flatnonzero(~test_sorted)),
            "test": torch.from_numpy(np.flatnonzero(test_sorted)),
        },
    )


def _seeded_test_digits(labels: np.ndarray) -> np.ndarray:
    """MNIST's test set: ``MNIST_TEST_PER_CLASS`` digits of each class, chosen by ``SPLIT_SEED``."""
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        is_test[rng.choice(rows, MNIST_TEST_PER_CLASS, replace=False)] = True
    return is_test


def paired(parts: dict[str, ClassImages]) -> ClassImages:
    """Domains joined into one dataset sorted by digit, ``domains`` indexing ``domain_names``; grey images
    repeated to three channels if any part is in colour. ``extras``: ``{domain}_train`` / ``{domain}_test``."""
    channels = max(p.images.shape[1] for p in parts.values())
    images, labels, domains, roles = [], [], [], []
    for index, (_name, part) in enumerate(parts.items()):
        images.append(part.images.expand(-1, channels, -1, -1))
        labels.append(part.labels)
        domains.append(torch.full_like(part.labels, index))
        role = torch.zeros_like(part.labels)
        role[part.extras["test"]] = 1
        roles.append(role)
    labels_all = torch.cat(labels)
    order = torch.argsort(labels_all, stable=True)
    domain_all, role_all = torch.cat(domains)[order], torch.cat(roles)[order]
    extras = {
        f"{name}_{role}": torch.nonzero((domain_all == i) & (role_all == r)).squeeze(1)
        for i, name in enumerate(parts)
        for r, role in enumerate(("train", "test"))
    }
    return ClassImages(
        torch.cat(images)[order].contiguous(), labels_all[order], DIGITS, domain_all, tuple(parts), extras
    )


# Tzeng et al. 2017 (ADDA) sample 2,000 MNIST and 1,800 USPS training images for the MNIST <-> USPS shifts.
SAMPLED = {"mnist": 2000, "usps": 1800}
SAMPLE_SEED = 0


class Digits(Dataset):
    name = "digits"
    summary = "handwritten digits in three domains (MNIST 10k, USPS, MNIST-M) for domain adaptation"
    citation = (
        "LeCun, Bottou, Bengio and Haffner 1998 (MNIST), Proc. IEEE 86(11); Hull 1994 (USPS), IEEE TPAMI "
        "16(5); Ganin and Lempitsky 2015 (MNIST-M), ICML"
    )
    protocols = ("uda", "target-only")
    default_protocol = "uda"
    domains = DOMAINS
    default_shift = ("mnist", "mnist-m")

    def status(self, root: Path) -> tuple[bool, str]:
        missing = [FILES[d][0] for d in DOMAINS if not (Path(root) / "digits" / FILES[d][0]).is_file()]
        if missing:
            return False, f"missing {', '.join(missing)} under {Path(root) / 'digits'}"
        return True, f"{Path(root) / 'digits'}: {', '.join(FILES[d][0] for d in DOMAINS)}"

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        source, target = source or self.default_shift[0], target or self.default_shift[1]
        for role, domain in (("source", source), ("target", target)):
            if domain not in DOMAINS:
                raise FewshotError(f"--{role} {domain}: digits has the domains {', '.join(DOMAINS)}")
        if source == target:
            raise FewshotError(f"--source and --target are both {source}: a domain shift needs two different domains")
        if size != SIZE:
            raise FewshotError(f"digits are {SIZE}x{SIZE}")
        data = paired({source: load_domain(root, source), target: load_domain(root, target)})
        sampled = {source, target} == {"mnist", "usps"}
        pools = {d: _training_pool(data, d, SAMPLED[d] if sampled else None) for d in (source, target)}
        every = np.arange(10)

        def images(rows: np.ndarray) -> Split:
            mask = torch.zeros(len(data.labels), dtype=torch.bool)
            mask[torch.as_tensor(rows)] = True
            return Split.of(every, image_mask=mask)

        splits = {
            "train": images(pools[source] if protocol == "uda" else pools[target]),
            "test": images(data.extras[f"{target}_test"].numpy()),
        }
        if protocol == "uda":  # target-only trains on the labelled target images: nothing is left to adapt to
            splits["target"] = images(pools[target])
        if target_labels:
            splits["target_labelled"] = images(labelled_subset(data.labels.numpy(), pools[target], target_labels))
        trained_on = np.concatenate([pools[source], pools[target]]) if protocol == "uda" else pools[target]
        sizes = f"{len(pools[source])} {source} / {len(pools[target])} {target} training images"
        note = (
            f"{protocol}: {source} -> {target}, {sizes}{' (sampled as in Tzeng et al. 2017)' if sampled else ''}; "
            f"scored on {len(data.extras[f'{target}_test'])} {target} test images"
        )
        return Benchmark(
            self.name,
            protocol,
            data,
            splits,
            notes=note,
            network="lenet",
            source=source,
            target=target,
            evaluation="images",
            pixel_mean=pixel_mean(data, trained_on),
        )


def pixel_mean(data: ClassImages, rows: np.ndarray) -> tuple[float, ...]:
    """The per-channel mean in [0, 1] of the images ``rows`` (the training images of both domains): what Ganin et
    al. subtract from the network's input ("mean subtraction"), never computed over a test image."""
    sums = data.images[torch.as_tensor(rows)].sum((0, 2, 3), dtype=torch.float64)
    pixels = len(rows) * data.images.shape[2] * data.images.shape[3]
    return tuple(round(float(v) / pixels / 255.0, 6) for v in sums)


def _training_pool(data: ClassImages, domain: str, count: int | None) -> np.ndarray:
    """The domain's training images (indices into ``data``), or ``count`` of them sampled by ``SAMPLE_SEED``."""
    rows = data.extras[f"{domain}_train"].numpy()
    if count is None:
        return rows
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(rows, count, replace=False))


def labelled_subset(labels: np.ndarray, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` images of ``pool`` whose labels a method may use (``--target-labels``): a seeded draw that
    takes the classes in turn, so every class gets ``count // 10`` or one more."""
    if count > len(pool):
        raise FewshotError(f"--target-labels {count}: the target domain has {len(pool)} training images")
    return np.sort(classes_in_turn(pool, labels[pool], count, np.random.default_rng(SAMPLE_SEED + 1)))
