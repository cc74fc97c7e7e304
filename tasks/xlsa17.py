"""Xian et al. 2018's zero-shot benchmarks as precomputed image features ("xlsa17": AWA2, CUB, SUN, ...).

Xian, Lampert, Schiele and Akata 2018, "Zero-Shot Learning: A Comprehensive
Evaluation of the Good, the Bad and the Ugly", TPAMI, publish per dataset two
MATLAB files: ``res101.mat`` (``features`` [2048, N], ResNet-101 features of
every image; ``labels`` [N, 1], 1-based class numbers) and ``att_splits.mat``
(``att`` [A, C], the classes' attribute vectors; and the proposed split as
1-based image indices: ``trainval_loc``, ``test_seen_loc``,
``test_unseen_loc``, and ``train_loc`` / ``val_loc`` for choosing
hyperparameters). The suite cannot ship them; a user who has them runs

    fewshot data import xlsa17 DIR --name AWA2

which checks them and stores the features, attributes and split in the cache;
``--dataset xlsa17:AWA2`` then evaluates on the proposed split:

* ``zsl``: train on the ``trainval`` images (seen classes), score every
  ``test_unseen`` image among the unseen classes;
* ``gzsl``: the same training, scoring ``test_seen`` and ``test_unseen``
  images among all classes (S, U, H).

Hyperparameters not fixed with ``--hp`` are chosen by fitting on
``train_loc`` and scoring the ``val_loc`` classes, as Xian et al. do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split, first_line
from fewshot.core.dataset import Dataset, Importer
from fewshot.core.errors import FewshotError
from fewshot.core.paths import cache_dir

FEATURE_FILE, SPLIT_FILE = "res101.mat", "att_splits.mat"
LOCATIONS = ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")
REQUIRED = {FEATURE_FILE: ("features", "labels"), SPLIT_FILE: ("att", *LOCATIONS)}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def imported_path(name: str) -> Path:
    return cache_dir() / "imported" / f"xlsa17-{name.upper()}.npz"


class XLSA17(Dataset):
    name = "xlsa17"
    variants = True  # --dataset xlsa17:NAME, one per imported dataset
    summary = "Xian et al. 2018's zero-shot benchmarks (ResNet-101 features, attributes), once imported"
    citation = (
        "Xian, Lampert, Schiele and Akata 2018, Zero-Shot Learning: A Comprehensive Evaluation of the Good, "
        "the Bad and the Ugly, IEEE TPAMI 41(9)"
    )
    protocols = ("zsl", "gzsl")
    default_protocol = "zsl"
    descriptions: ClassVar[Mapping[str, str]] = {"attributes": "the classes' attribute vectors (att_splits.mat `att`)"}

    def __init__(self, variant: str | None = None):
        self.variant = variant

    def status(self, root: Path) -> tuple[bool, str]:
        found = sorted(p.stem.removeprefix("xlsa17-") for p in (cache_dir() / "imported").glob("xlsa17-*.npz"))
        if not found:
            return (
                False,
                "nothing imported: `fewshot data import xlsa17 DIR --name NAME` (DIR holds res101.mat and att_splits.mat)",
            )
        return True, "imported: " + ", ".join(f"xlsa17:{n}" for n in found)

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        """``size`` is not used: the features are fixed. Xian et al.'s benchmarks have no domains."""
        if self.variant is None:
            raise FewshotError("name the imported dataset: --dataset xlsa17:NAME (see `fewshot datasets`)")
        path = imported_path(self.variant)
        if not path.exists():
            raise FewshotError(
                f"xlsa17:{self.variant} is not imported: run `fewshot data import xlsa17 DIR "
                f"--name {self.variant}` with DIR holding {FEATURE_FILE} and {SPLIT_FILE}"
            )
        try:
            data = ClassImages.load(path)
            attributes = data.extras["attributes"].float()
            masks = {role: torch.zeros(data.labels.numel(), dtype=torch.bool) for role in LOCATIONS}
            for role in LOCATIONS:
                masks[role][data.extras[role]] = True
            if not data.is_features or attributes.shape[0] != len(data.classes):
                raise ValueError("the features or attributes have the wrong shape")
            if not bool(torch.isfinite(attributes).all()):  # an import of an earlier version, which let them in
                raise ValueError("its attributes hold NaN or infinite values")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise FewshotError(f"{path} is damaged ({err}): import xlsa17:{self.variant} again") from None

        def role_split(*roles: str) -> Split:
            mask = torch.stack([masks[r] for r in roles]).any(0)
            return Split.of(torch.unique(data.labels[mask]), image_mask=mask)

        test = role_split("test_unseen_loc") if protocol == "zsl" else role_split("test_seen_loc", "test_unseen_loc")
        splits = {
            "train": role_split("trainval_loc"),
            "select": role_split("train_loc"),
            "val": role_split("val_loc"),
            "test": test,
        }
        return Benchmark(
            f"xlsa17:{self.variant.upper()}",
            protocol,
            data,
            splits,
            notes="Xian et al. 2018's proposed split",
            sides=("attributes",),
            describe=lambda side: attributes,
            zero_shot=True,
            evaluation="gzsl" if protocol == "gzsl" else "",
            selection_train="select",
        )


class XLSA17Import(Importer):
    """`fewshot data import xlsa17 DIR --name NAME`: Xian et al.'s two files, as ``--dataset xlsa17:NAME``."""

    name = "xlsa17"
    summary = "DIR holds Xian et al. 2018's res101.mat and att_splits.mat; then --dataset xlsa17:NAME"

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        if path is None:
            raise FewshotError(
                "name the folder that holds res101.mat and att_splits.mat: fewshot data import xlsa17 DIR --name NAME"
            )
        return import_xlsa17(path, name)


def import_xlsa17(directory: Path, name: str) -> str:
    """Check ``directory``'s two files and store them as ``xlsa17:NAME``; returns a one-line summary."""
    if not NAME.fullmatch(name):
        raise FewshotError(f"--name {name!r}: use letters, digits, - and _ (for example AWA2)")
    arrays = {}
    for filename, keys in REQUIRED.items():
        arrays.update(_read_mat(Path(directory) / filename, keys))
    data, summary = _checked(arrays, name.upper())
    path = imported_path(name)
    try:
        data.save(path)
    except OSError as err:
        raise FewshotError(f"cannot write {path}: {err}; set FEWSHOT_CACHE to a writable folder") from None
    return f"imported xlsa17:{name.upper()} into {path}: {summary}"


# Reads MATLAB variables in a child process and hands them back as an .npz of plain arrays (never pickles): scipy's
# reader dies of a segmentation fault on some damaged files (scipy 1.17; found by tests/fuzz), which no except can
# catch. A variable that is not an array of real numbers comes back as its dtype's name under "KEY.dtype".
_MAT_READER = """
import sys
import numpy as np
from scipy.io import loadmat
path, out, *keys = sys.argv[1:]
try:
    content = loadmat(path, variable_names=keys)
except Exception as err:  # one line for the parent, whatever the bytes
    sys.stderr.write(type(err).__name__ + ": " + " ".join(str(err).split())[:200])
    sys.exit(3)
arrays = {}
for key in keys:
    if key in content:
        array = np.asarray(content[key])
        if array.dtype.kind in "biuf":
            arrays[key] = array
        else:
            arrays[key + ".dtype"] = np.array(str(array.dtype))
np.savez(out, **arrays)
"""


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``keys`` of the MATLAB file at ``path`` (those it holds), read by scipy in a child process."""
    import signal
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fewshot-mat-") as folder:
        out = Path(folder) / "arrays.npz"
        done = subprocess.run(
            [sys.executable, "-c", _MAT_READER, str(path), str(out), *keys], capture_output=True, text=True
        )
        if done.returncode < 0:
            crash = signal.Signals(-done.returncode).name
            raise FewshotError(f"{path} is not a readable MATLAB file (scipy's reader crashed on it: {crash})")
        if done.returncode != 0:
            raise FewshotError(f"{path} is not a readable MATLAB file ({first_line(done.stderr)})")
        with np.load(out, allow_pickle=False) as content:
            return {key: content[key] for key in content.files}


def _read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import importlib.util

    if importlib.util.find_spec("scipy") is None:
        raise FewshotError("reading MATLAB files needs scipy: pip install 'fewshot[xlsa17]'")
    if not path.is_file():
        raise FewshotError(f"{path} is missing: the folder must hold Xian et al.'s {FEATURE_FILE} and {SPLIT_FILE}")
    content = _loadmat(path, keys)
    missing = [k for k in keys if k not in content and f"{k}.dtype" not in content]
    if missing:
        raise FewshotError(f"{path} lacks {', '.join(missing)}: is it Xian et al.'s {path.name}?")
    wrong = next((k for k in keys if f"{k}.dtype" in content), None)
    if wrong is not None:  # a cell array, text, a struct or complex numbers
        dtype = content[f"{wrong}.dtype"]
        raise FewshotError(f"{path}: {wrong} holds {dtype} values, not real numbers: is it Xian et al.'s?")
    arrays = {k: content[k] for k in keys}
    for key, array in arrays.items():
        if not np.isfinite(array).all():
            raise FewshotError(f"{path}: {key} holds NaN or infinite values; every value must be a finite number")
        if array.size == 0:
            raise FewshotError(f"{path}: {key} is empty")
    return arrays


def _float32(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as contiguous float32, refusing values beyond float32's range (they would become infinite)."""
    if float(np.abs(array).max()) > float(np.finfo(np.float32).max):
        raise FewshotError(f"{what} overflow float32 (values beyond 3.4e38)")
    return np.ascontiguousarray(array, dtype=np.float32)


def _checked(arrays: dict[str, np.ndarray], name: str) -> tuple[ClassImages, str]:
    """The arrays as a ClassImages sorted by class, with 0-based split indices; every inconsistency is an error."""
    features = arrays["features"]
    labels = arrays["labels"].reshape(-1)
    if features.ndim != 2:
        raise FewshotError(f"{FEATURE_FILE}: features must be a 2-D matrix [D, N], got shape {features.shape}")
    if features.shape[1] != labels.size:
        if features.shape[0] != labels.size:
            raise FewshotError(f"{FEATURE_FILE}: features {features.shape} do not match {labels.size} labels")
        features = features.T
    features = _float32(features.T, f"{FEATURE_FILE}: features")  # [N, D]
    attributes = arrays["att"]
    if attributes.ndim != 2:
        raise FewshotError(f"{SPLIT_FILE}: att must be a 2-D matrix [attributes, classes], got {attributes.shape}")
    described = _float32(attributes.T, f"{SPLIT_FILE}: att")  # [classes, attributes]
    classes = attributes.shape[1]
    if not np.array_equal(labels, np.round(labels)) or labels.min() < 1 or labels.max() > classes:
        raise FewshotError(f"{FEATURE_FILE}: labels must be class numbers 1..{classes} (att has {classes} classes)")
    labels = labels.astype(np.int64) - 1
    missing = np.flatnonzero(np.bincount(labels, minlength=classes) == 0)
    if missing.size:
        raise FewshotError(
            f"{FEATURE_FILE}: no image is labelled with class {missing[0] + 1} of the {classes} att describes; "
            f"the labels and att_splits.mat must come from the same dataset"
        )
    order = np.argsort(labels, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)  # where each original image lands after sorting by class
    locations = {}
    for role in LOCATIONS:
        raw = arrays[role].reshape(-1)
        if raw.size == 0 or not np.array_equal(raw, np.round(raw)) or raw.min() < 1 or raw.max() > labels.size:
            raise FewshotError(
                f"{SPLIT_FILE}: {role} must list image numbers 1..{labels.size}; "
                f"{'it is empty' if raw.size == 0 else 'some are out of range'}"
            )
        locations[role] = torch.from_numpy(position[raw.astype(np.int64) - 1])
    sorted_labels = labels[order]
    seen = set(sorted_labels[locations["trainval_loc"].numpy()].tolist())
    unseen = set(sorted_labels[locations["test_unseen_loc"].numpy()].tolist())
    if seen & unseen:
        raise FewshotError(
            f"{SPLIT_FILE}: classes {sorted(seen & unseen)[:5]} are both in trainval_loc and "
            f"test_unseen_loc; the unseen classes must be new"
        )
    data = ClassImages(
        images=torch.from_numpy(features[order]),
        labels=torch.from_numpy(sorted_labels),
        classes=tuple(ClassInfo(f"class{c + 1}", name) for c in range(classes)),
        extras={"attributes": torch.from_numpy(described), **locations},
    )
    summary = json.dumps(
        {
            "images": int(labels.size),
            "feature_dim": int(features.shape[1]),
            "classes": classes,
            "attributes": int(attributes.shape[0]),
            "seen": len(seen),
            "unseen": len(unseen),
        }
    )
    return data, summary
