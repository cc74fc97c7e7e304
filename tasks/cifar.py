"""CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018), the few-shot benchmarks cut from
CIFAR-100's 60,000 32x32 images of 100 classes (600 each), imported from the files researchers have:

    fewshot data import cifar-fs DIR [--name cifar-fs]
    fewshot data import fc100 DIR [--name fc100]

``DIR`` holds either

* MetaOptNet's pickles (Lee et al. 2019; learn2learn downloads the same): ``CIFAR_FS_train.pickle``,
  ``CIFAR_FS_val.pickle``, ``CIFAR_FS_test.pickle`` (``FC100_*.pickle`` for FC100), python 2 pickles read with
  latin-1 through :mod:`fewshot.core.safe_pickle`, which runs nothing: each a dict of ``data``, uint8
  ``[N, 32, 32, 3]``, and ``labels``, each image's CIFAR-100 fine-label id. Each pickle's classes are its
  split's; a class in two pickles, or in a pickle its published split puts elsewhere, is refused; or
* CIFAR-100's python release, ``cifar-100-python/`` (or the folder holding it): ``train`` and ``test``, dicts
  of ``data`` (uint8 rows of 3,072: the red, green and blue planes of 32x32), ``fine_labels`` and
  ``coarse_labels``, and ``meta``, the label names. Both files' images of a class are used (600 a class), as
  the few-shot splits do, cut by the split this package ships (``cifar_fs_split.json``, ``fc100_split.json``).

Classes are named by their CIFAR-100 fine label (``cifar100_classes.json``), grouped by superclass. The protocol
is ``bertinetto`` for CIFAR-FS (64 / 16 / 20 classes) and ``oreshkin`` for FC100 (60 / 20 / 20 classes of 12 /
4 / 4 superclasses). The images are stored once in the cache as uint8 ``[n, 3, 32, 32]``, one split at a time,
with a record of the import, written last, holding every source file's md5.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fewshot.core import safe_pickle
from fewshot.core.data import ROLES, ImagesFile, file_digest
from fewshot.core.dataset import Importer, imports_dir
from fewshot.core.errors import FewshotError
from fewshot.tasks.folder import ImportedFolder, checked_import_name
from fewshot.tasks.mini_imagenet import Block, checked_roles, save_blocks

SIDE = 32
RELEASE = "cifar-100-python"
RELEASE_FILES = ("train", "test", "meta")


@cache
def _shipped(file: str) -> dict[str, Any]:
    return dict(json.loads(files("fewshot.tasks").joinpath(file).read_text()))


def fine_names() -> list[str]:
    """CIFAR-100's fine labels: a label's id is its index."""
    return list(_shipped("cifar100_classes.json")["fine_label_names"])


def superclasses() -> dict[str, list[str]]:
    """CIFAR-100's superclasses (coarse labels, in id order), each with its five fine labels."""
    return dict(_shipped("cifar100_classes.json")["superclasses"])


def superclass_of() -> dict[str, str]:
    return {fine: coarse for coarse, names in superclasses().items() for fine in names}


@dataclass(frozen=True)
class Benchmark:
    """One of the two benchmarks: its names, its pickles' prefix and its published split."""

    format: str
    title: str
    protocol: str
    prefix: str
    split_file: str
    by_superclass: bool
    citation: str
    authors: str

    def split(self) -> dict[str, list[str]]:
        """Each role's fine labels, in CIFAR-100's id order."""
        shipped = _shipped(self.split_file)
        order = {name: i for i, name in enumerate(fine_names())}
        groups = superclasses()
        return {
            role: sorted(
                (f for c in shipped[role] for f in groups[c]) if self.by_superclass else shipped[role],
                key=order.__getitem__,
            )
            for role in ROLES
        }

    def pickles(self) -> dict[str, str]:
        return {role: f"{self.prefix}_{role}.pickle" for role in ROLES}


CIFAR_FS = Benchmark(
    format="cifar-fs",
    title="CIFAR-FS",
    protocol="bertinetto",
    prefix="CIFAR_FS",
    split_file="cifar_fs_split.json",
    by_superclass=False,
    citation=(
        "Bertinetto, Henriques, Torr and Vedaldi 2019, Meta-learning with differentiable closed-form solvers, "
        "ICLR; images of Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (CIFAR-100)"
    ),
    authors="Bertinetto et al. 2019",
)
FC100 = Benchmark(
    format="fc100",
    title="FC100",
    protocol="oreshkin",
    prefix="FC100",
    split_file="fc100_split.json",
    by_superclass=True,
    citation=(
        "Oreshkin, Rodriguez and Lacoste 2018, TADAM: Task dependent adaptive metric for improved few-shot "
        "learning, NeurIPS; images of Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images "
        "(CIFAR-100)"
    ),
    authors="Oreshkin et al. 2018",
)


class ImportedCifar(ImportedFolder):
    """CIFAR-FS or FC100 as imported by :class:`CifarFSImport` or :class:`FC100Import`, from its record."""

    def __init__(self, name: str, record: Mapping[str, Any], benchmark: Benchmark):
        super().__init__(name, record)
        counts = "/".join(str(len(record["splits"][benchmark.protocol][role])) for role in ROLES)
        self.summary = (
            f"{benchmark.title} ({record['layout']} in {record['source']}): {record['images']:,} images of "
            f"{len(record['classes'])} classes ({counts}), {SIDE}x{SIDE} RGB"
        )
        self.citation = benchmark.citation


class CifarImport(Importer):
    """What the CIFAR-FS and FC100 importers share: they differ only in their :class:`Benchmark`."""

    benchmark: ClassVar[Benchmark]
    options = ("force",)

    def dataset(self, name: str, record: Mapping[str, Any]) -> ImportedCifar:
        return ImportedCifar(name, record, self.benchmark)

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        bench, force = self.benchmark, bool(options.get("force"))
        checked_import_name(name, force)
        pickles = bench.pickles()
        if path is None or not Path(path).is_dir():
            raise FewshotError(
                f"{path or 'no folder given'}: give the folder holding {bench.prefix}_{{train,val,test}}.pickle, "
                f"or {RELEASE}/: fewshot data import {bench.format} DIR"
            )
        folder = Path(path)
        release = next((f for f in (folder, folder / RELEASE) if (f / "meta").exists()), None)
        with ImagesFile(imports_dir(), (3, SIDE, SIDE)) as written:
            if any((folder / file).exists() for file in pickles.values()):
                layout, md5s = "pickles", _md5s(folder, list(pickles.values()), f"{bench.title}'s pickles are")
                blocks = {role: _pickle_block(folder / pickles[role], written) for role in ROLES}
                _check_published(blocks, bench, pickles, folder)
            elif release is not None:
                folder, layout = release, RELEASE
                md5s = _md5s(folder, list(RELEASE_FILES), f"CIFAR-100's python release ({RELEASE}/) holds")
                blocks = _release_blocks(folder, bench, written)
            else:
                raise FewshotError(
                    f"{folder} holds neither {bench.prefix}_{{train,val,test}}.pickle nor CIFAR-100's python "
                    f"release ({RELEASE}/ with train, test and meta)"
                )
            images = torch.from_numpy(written.opened())
            return save_blocks(
                name,
                folder,
                bench.format,
                bench.protocol,
                layout,
                blocks,
                md5s,
                images,
                force,
                written.path,
                superclass_of(),
            )


class CifarFSImport(CifarImport):
    name = CIFAR_FS.format
    benchmark = CIFAR_FS
    summary = (
        "DIR holds MetaOptNet's CIFAR_FS_{train,val,test}.pickle, or CIFAR-100's cifar-100-python/; 32x32 RGB, "
        f"protocol {CIFAR_FS.protocol} (64/16/20 classes); then --dataset NAME (default {CIFAR_FS.format})"
    )
    default_name = CIFAR_FS.format


class FC100Import(CifarImport):
    name = FC100.format
    benchmark = FC100
    summary = (
        "DIR holds MetaOptNet's FC100_{train,val,test}.pickle, or CIFAR-100's cifar-100-python/; 32x32 RGB, "
        f"protocol {FC100.protocol} (60/20/20 classes of 12/4/4 superclasses); then --dataset NAME "
        f"(default {FC100.format})"
    )
    default_name = FC100.format


def _md5s(folder: Path, names: list[str], what: str) -> dict[str, str]:
    md5s = {}
    for file in names:
        path = folder / file
        if not path.exists():
            raise FewshotError(f"{folder} has no {file}: {what} {', '.join(names)}")
        try:
            md5s[file] = file_digest(path)
        except OSError as err:
            raise FewshotError(f"cannot read {path}: {err.strerror or err}") from None
    return md5s


def text_keys(content: Any, path: Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """A pickled dict's entries under ``keys``: a python 2 pickle read with latin-1 has str keys, one written by
    python 3 (or read as bytes) bytes keys; both are read."""
    if not isinstance(content, dict):
        raise FewshotError(f"{path} holds a {type(content).__name__}, not {what}'s dict of {', '.join(keys)}")
    text = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}
    missing = [key for key in keys if key not in text]
    if missing:
        raise FewshotError(f"{path} has no {missing[0]!r} key: {what} holds {', '.join(keys)}")
    return {key: text[key] for key in keys}


def _label_ids(labels: Any, count: int, path: Path, key: str) -> np.ndarray:
    """``labels`` as int64 fine- (or coarse-) label ids, one per image, each checked to be in range."""
    top = 100 if key != "coarse_labels" else 20
    try:
        ids = np.asarray(labels)
    except (TypeError, ValueError):
        ids = np.asarray([])
    if ids.ndim != 1 or (ids.dtype.kind not in "iu" and ids.size):
        raise FewshotError(f"{path}: {key} must be a list of integer label ids, one per image")
    if len(ids) != count:
        raise FewshotError(f"{path}: {key} holds {len(ids):,} labels for {count:,} images")
    if count and (ids.min() < 0 or ids.max() >= top):
        raise FewshotError(
            f"{path}: {key} holds the id {int(ids.min() if ids.min() < 0 else ids.max())}; "
            f"CIFAR-100's are 0 to {top - 1}"
        )
    return ids.astype(np.int64)


def _described(array: Any) -> str:
    return f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__


def _pickle_block(path: Path, written: ImagesFile) -> Block:
    """A split's MetaOptNet pickle, checked, its images appended to ``written`` class by class in label-id
    order (its arrays are freed before the next split's pickle is read)."""
    content = text_keys(safe_pickle.load(path, encoding="latin1"), path, ("data", "labels"), "MetaOptNet's pickle")
    images = content["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (SIDE, SIDE, 3):
        raise FewshotError(f"{path}: data is {_described(images)}; MetaOptNet's pickles hold uint8 [N, 32, 32, 3]")
    labels = _label_ids(content["labels"], len(images), path, "labels")
    names = fine_names()
    classes, counts = [], []
    ids, sizes = np.unique(labels, return_counts=True)
    if not len(ids):
        raise FewshotError(f"{path} holds no images")
    for label, size in zip(ids.tolist(), sizes.tolist()):
        if size < 2:
            raise FewshotError(f"{path}: class {names[label]} (label {label}) has 1 image: a class needs at least 2")
        classes.append(names[label])
        counts.append(size)
    for label in ids.tolist():  # every check passed: only now is anything written
        written.append(images[labels == label].transpose(0, 3, 1, 2))
    return Block(classes, counts)


def _check_published(blocks: Mapping[str, Block], bench: Benchmark, pickles: Mapping[str, str], folder: Path) -> None:
    """Each pickle's classes in the published split's share of that role: the pickles may hold fewer classes,
    never a class the split puts in another role (nor one in two pickles)."""
    checked_roles({role: blocks[role].classes for role in ROLES}, folder)
    published = {name: role for role, names in bench.split().items() for name in names}
    for role in ROLES:
        for name in blocks[role].classes:
            if published[name] != role:
                raise FewshotError(
                    f"{folder / pickles[role]} holds class {name}, which {bench.authors} put in {published[name]}: "
                    f"these are not {bench.title}'s {role} images"
                )


def _release_blocks(folder: Path, bench: Benchmark, written: ImagesFile) -> dict[str, Block]:
    """CIFAR-100's python release cut by ``bench``'s split: each split's classes in label-id order, each class's
    images those of ``train`` then those of ``test``, in file order, appended to ``written``."""
    meta_path = folder / "meta"
    meta = text_keys(
        safe_pickle.load(meta_path, encoding="latin1"),
        meta_path,
        ("fine_label_names", "coarse_label_names"),
        "CIFAR-100's meta",
    )
    for key, shipped in (("fine_label_names", fine_names()), ("coarse_label_names", list(superclasses()))):
        given = meta[key] if isinstance(meta[key], (list, tuple)) else []
        if [n.decode("latin1") if isinstance(n, bytes) else n for n in given] != shipped:
            raise FewshotError(f"{meta_path}: {key} are not CIFAR-100's {len(shipped)} labels (in id order)")
    parts = [_release_part(folder / part) for part in ("train", "test")]
    names, blocks = fine_names(), {}
    for role, classes in bench.split().items():
        counts = []
        for name in classes:
            label = names.index(name)
            rows = [data[fine == label] for data, fine in parts]
            count = sum(len(r) for r in rows)
            if count < 2:
                raise FewshotError(
                    f"{folder}: class {name}, which {bench.authors} put in {role}, has {count} image in train and "
                    f"test: a class needs at least 2"
                )
            for block in rows:
                written.append(block.reshape(-1, 3, SIDE, SIDE))
            counts.append(count)
        blocks[role] = Block(classes, counts)
    return blocks


def _release_part(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One of the release's ``train`` and ``test``: its image rows and fine labels, checked (the coarse labels
    against CIFAR-100's superclasses)."""
    keys = ("data", "fine_labels", "coarse_labels")
    content = text_keys(safe_pickle.load(path, encoding="latin1"), path, keys, "CIFAR-100's python release")
    data = content["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE**2:
        raise FewshotError(f"{path}: data is {_described(data)}; CIFAR-100's python release holds uint8 [N, 3072]")
    fine = _label_ids(content["fine_labels"], len(data), path, "fine_labels")
    coarse = _label_ids(content["coarse_labels"], len(data), path, "coarse_labels")
    coarse_of = superclass_of()
    expected = np.array([list(superclasses()).index(coarse_of[name]) for name in fine_names()])[fine]
    wrong = np.flatnonzero(expected != coarse)
    if len(wrong):
        raise FewshotError(
            f"{path}: image {int(wrong[0])} is of class {fine_names()[fine[wrong[0]]]} with the coarse label "
            f"{int(coarse[wrong[0]])}, not CIFAR-100's superclass of it ({int(expected[wrong[0]])})"
        )
    return data, fine
