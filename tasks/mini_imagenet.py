"""mini-ImageNet (Vinyals et al. 2016, with Ravi & Larochelle 2017's class split), imported from the files
researchers have:

    fewshot data import mini-imagenet DIR [--name mini-imagenet]

``DIR`` holds either

* the cache pickles ``mini-imagenet-cache-train.pkl``, ``-val.pkl`` (learn2learn names it ``-validation.pkl``)
  and ``-test.pkl``: each a dict of ``image_data``, uint8 ``[N, 84, 84, 3]``, and ``class_dict``, each class's
  wnid to the indices of its images; read through :mod:`fewshot.core.safe_pickle`, which runs nothing; or
* Ravi & Larochelle's ``train.csv``, ``val.csv`` and ``test.csv`` (a header ``filename,label``, then
  ``n0153282900000005.jpg,n01532829``) beside an ``images/`` folder of those JPEGs (flat, or in a sub-folder
  per wnid), each decoded once and resized to 84x84 as the split's users do.

Each split's classes stay in that split; the protocol ``ravi`` (the default) is that split, 64 / 16 / 20
classes of 600 images in the real files. The images are stored once in the cache as uint8 ``[n, 3, 84, 84]``
with a record of the import, written last, holding every source file's md5; ``--dataset NAME`` then
evaluates on them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fewshot.core import safe_pickle
from fewshot.core.data import ROLES, ClassImages, ClassInfo, ImagesFile, file_digest, opened_image
from fewshot.core.dataset import Importer, imports_dir, save_import
from fewshot.core.errors import FewshotError
from fewshot.tasks.folder import MAX_PIXELS, ImportedFolder, checked_import_name, csv_entries

FORMAT = "mini-imagenet"
PROTOCOL = "ravi"
SIDE = 84
# learn2learn names the validation pickle -validation, the original cache -val; either is read.
PICKLES = {role: [f"mini-imagenet-cache-{role}.pkl"] for role in ROLES}
PICKLES["val"].append("mini-imagenet-cache-validation.pkl")
KEYS = ("image_data", "class_dict")
CITATION = (
    "Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016, Matching Networks for One Shot Learning, "
    "NeurIPS; split of Ravi and Larochelle 2017, Optimization as a Model for Few-Shot Learning, ICLR"
)


@dataclass(frozen=True)
class Block:
    """One split's classes' names and image counts, in the order its images were appended to the import's."""

    classes: list[str]
    counts: list[int]


class ImportedMiniImageNet(ImportedFolder):
    """mini-ImageNet as imported by :class:`MiniImageNetImport`, described by its import record."""

    def __init__(self, name: str, record: Mapping[str, Any]):
        super().__init__(name, record)
        counts = "/".join(str(len(record["splits"][PROTOCOL][role])) for role in ROLES)
        self.summary = (
            f"mini-ImageNet ({record['layout']} in {record['source']}): {record['images']:,} images of "
            f"{len(record['classes'])} classes ({counts}), {SIDE}x{SIDE} RGB"
        )
        self.citation = CITATION


class MiniImageNetImport(Importer):
    name = FORMAT
    summary = (
        "DIR holds mini-imagenet-cache-{train,val,test}.pkl (or -validation.pkl), or Ravi's {train,val,test}.csv "
        f"beside images/; 84x84 RGB, protocol {PROTOCOL}; then --dataset NAME (default {FORMAT})"
    )
    options = ("force",)
    default_name = FORMAT

    def dataset(self, name: str, record: Mapping[str, Any]) -> ImportedMiniImageNet:
        return ImportedMiniImageNet(name, record)

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        force = bool(options.get("force"))
        checked_import_name(name, force)
        if path is None or not Path(path).is_dir():
            raise FewshotError(
                f"{path or 'no folder given'}: give the folder holding mini-imagenet-cache-*.pkl, or "
                f"train.csv, val.csv, test.csv and images/: fewshot data import {FORMAT} DIR"
            )
        folder = Path(path)
        with ImagesFile(imports_dir(), (3, SIDE, SIDE)) as written:
            if any((folder / file).exists() for files in PICKLES.values() for file in files):
                layout, md5s = "pickles", pickle_md5s(folder)
                blocks = {role: _pickle_block(_pickle_of(folder, role), written) for role in ROLES}
            elif (folder / "train.csv").exists():
                layout, (blocks, md5s) = "csv", csv_blocks(folder, written)
            else:
                raise FewshotError(
                    f"{folder} holds neither mini-imagenet-cache-{{train,val,test}}.pkl nor train.csv, val.csv, "
                    f"test.csv beside images/"
                )
            images = torch.from_numpy(written.opened())
            return save_blocks(name, folder, FORMAT, PROTOCOL, layout, blocks, md5s, images, force, written.path)


def save_blocks(
    name: str,
    folder: Path,
    format_name: str,
    protocol: str,
    layout: str,
    blocks: Mapping[str, Block],
    md5s: dict[str, str],
    images: torch.Tensor,
    force: bool,
    images_file: Path,
    group_of: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Save an import of square RGB ``images`` whose splits' classes are ``blocks`` (each split's images appended
    in that order), with the md5s of its source files, as the ``protocol`` of ``format_name``; ``group_of`` names a
    class's group (a superclass); ``extra`` adds entries to the import record. Returns the line `fewshot data
    import` prints."""
    splits = checked_roles({role: blocks[role].classes for role in ROLES}, folder)
    classes = [c for role in ROLES for c in blocks[role].classes]
    counts = [n for role in ROLES for n in blocks[role].counts]
    side = int(images.shape[-1])
    digest = hashlib.sha256(f"{format_name} {layout} side={side}\n".encode())
    for file, md5 in sorted(md5s.items()):
        digest.update(f"{file}\0{md5}\n".encode())
    data = ClassImages(
        images=images,
        labels=torch.arange(len(classes)).repeat_interleave(torch.tensor(counts)),
        classes=tuple(ClassInfo(c, (group_of or {}).get(c, "")) for c in classes),
        key=digest.hexdigest()[:16],
    )
    record = {
        "name": name,
        "format": format_name,
        "layout": layout,
        "source": str(folder.resolve()),
        "images": int(images.shape[0]),
        "size": side,
        "channels": 3,
        "classes": classes,
        "class_images": counts,
        "splits": {protocol: splits},
        "files_md5": md5s,
        **(extra or {}),
    }
    arrays = save_import(record, data, force, images_file)
    shares = ", ".join(f"{len(splits[role])} {role}" for role in ROLES)
    return (
        f"imported {name}: {images.shape[0]:,} images of {len(classes)} classes ({shares}) at "
        f"{side}x{side}x3 from {layout} into {arrays}; protocol {protocol}: --dataset {name}"
    )


def checked_roles(classes: Mapping[str, list[str]], folder: Path) -> dict[str, list[str]]:
    """Each role's class names; a class in two splits, or a split of no classes, is refused."""
    role_of: dict[str, str] = {}
    for role in ROLES:
        if not classes[role]:
            raise FewshotError(f"{folder}: the {role} split has no classes")
        for name in classes[role]:
            if role_of.setdefault(name, role) != role:
                raise FewshotError(
                    f"{folder}: class {name} is in both {role_of[name]} and {role}; each class is in one split"
                )
    return {role: list(classes[role]) for role in ROLES}


def _pickle_of(folder: Path, role: str) -> Path:
    found = [folder / file for file in PICKLES[role] if (folder / file).exists()]
    if not found:
        raise FewshotError(f"{folder} has no {' or '.join(PICKLES[role])}: the {role} split is missing")
    if len(found) > 1:
        raise FewshotError(f"{folder} holds both {found[0].name} and {found[1].name}: keep one")
    return found[0]


def pickle_md5s(folder: Path) -> dict[str, str]:
    md5s = {}
    for role in ROLES:
        path = _pickle_of(folder, role)
        try:
            md5s[path.name] = file_digest(path)
        except OSError as err:
            raise FewshotError(f"cannot read {path}: {err.strerror or err}") from None
    return md5s


def _pickle_block(path: Path, written: ImagesFile) -> Block:
    """A split's pickle, checked, its images appended to ``written`` class by class (its raw array is freed
    before the next split's is read)."""
    content = safe_pickle.load(path)
    if not isinstance(content, dict):
        raise FewshotError(f"{path} holds a {type(content).__name__}, not mini-ImageNet's dict of {', '.join(KEYS)}")
    missing = [key for key in KEYS if key not in content]
    if missing:
        raise FewshotError(f"{path} has no {missing[0]!r} key: mini-ImageNet's cache holds {', '.join(KEYS)}")
    images, class_dict = content["image_data"], content["class_dict"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (SIDE, SIDE, 3):
        described = f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
        raise FewshotError(f"{path}: image_data is {described}; mini-ImageNet's cache holds uint8 [N, 84, 84, 3]")
    if not isinstance(class_dict, dict) or not class_dict:
        raise FewshotError(f"{path}: class_dict must map each class's wnid to its images' indices")
    seen = np.zeros(len(images), dtype=bool)
    classes, counts, rows = [], [], []
    for wnid in sorted(class_dict, key=str):
        where = f"{path}: class_dict[{wnid!r}]"
        try:
            indices = np.asarray(class_dict[wnid], dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise FewshotError(f"{where} is not a list of image indices") from None
        if not isinstance(wnid, str) or not wnid:
            raise FewshotError(f"{where}: a class's name must be a non-empty string")
        if len(indices) < 2:
            raise FewshotError(f"{where} has {len(indices)} image: a class needs at least 2")
        if indices.min() < 0 or indices.max() >= len(images):
            raise FewshotError(f"{where} names an image outside image_data's {len(images)}")
        if seen[indices].any() or len(np.unique(indices)) != len(indices):
            raise FewshotError(f"{where} names an image another class (or the same class) names too")
        seen[indices] = True
        classes.append(wnid)
        counts.append(len(indices))
        rows.append(indices)
    if not seen.all():
        raise FewshotError(f"{path}: {int((~seen).sum())} images of image_data belong to no class of class_dict")
    for indices in rows:  # every check passed: only now is anything written
        written.append(images[indices].transpose(0, 3, 1, 2))
    return Block(classes, counts)


def csv_blocks(folder: Path, written: ImagesFile) -> tuple[dict[str, Block], dict[str, str]]:
    """Each split's CSV, its images decoded one at a time into that split's array, appended to ``written``;
    and the md5s of the CSVs and of every image (the images' as one sha256 over name and md5, as ``images``)."""
    tables = {role: folder / f"{role}.csv" for role in ROLES}
    rows_of = {
        role: sorted(_csv_rows(table, folder), key=lambda row: (row[1], row[0].name)) for role, table in tables.items()
    }
    # Every check the CSVs allow comes before any image is decoded.
    counts_of = {role: Counter(label for _, label in rows) for role, rows in rows_of.items()}
    checked_roles({role: sorted(counts) for role, counts in counts_of.items()}, folder)
    for role, counts in counts_of.items():
        few = sorted(c for c, n in counts.items() if n < 2)
        if few:
            raise FewshotError(f"{tables[role]}: class {few[0]} has 1 image: a class needs at least 2")
    md5s = {table.name: file_digest(table) for table in tables.values()}
    images_digest = hashlib.sha256()
    blocks = {}
    for role, rows in rows_of.items():
        pixels = np.empty((len(rows), 3, SIDE, SIDE), dtype=np.uint8)
        for i, (file, raw) in enumerate(_read(rows)):
            pixels[i] = _decoded(raw, file)
            images_digest.update(f"{file.relative_to(folder)}\0{hashlib.md5(raw).hexdigest()}\n".encode())
        written.append(pixels)
        classes = sorted(counts_of[role])
        blocks[role] = Block(classes, [counts_of[role][c] for c in classes])
    md5s["images"] = images_digest.hexdigest()
    return blocks, md5s


def _csv_rows(table: Path, folder: Path) -> list[tuple[Path, str]]:
    if not table.is_file():
        raise FewshotError(f"{folder} has no {table.name}: Ravi's split is train.csv, val.csv and test.csv")
    rows, seen = [], set()
    for line, entry in csv_entries(table, ("filename", "label"), "filename,label, as in Ravi's split"):
        filename, label = entry["filename"], entry["label"]
        where = f"{table}, line {line}"
        if not filename or not label or any(c in text for text in (filename, label) for c in "/\\") or ".." in label:
            raise FewshotError(f"{where}: a file name (no folder) and a label are needed")
        file = folder / "images" / filename
        if not file.is_file():
            file = folder / "images" / label / filename
        if not file.is_file():
            raise FewshotError(f"{where}: images/{filename} does not exist (nor images/{label}/{filename})")
        if filename in seen:
            raise FewshotError(f"{where}: {filename} is listed twice")
        seen.add(filename)
        rows.append((file, label))
    return rows


def _read(rows: list[tuple[Path, str]]) -> Iterator[tuple[Path, bytes]]:
    for file, _ in rows:
        try:
            yield file, file.read_bytes()
        except OSError as err:
            raise FewshotError(f"cannot read {file}: {err.strerror or err}") from None


def _decoded(raw: bytes, file: Path) -> np.ndarray:
    """An image as uint8 ``[3, 84, 84]``: converted to RGB and resized whole (not cropped) with Lanczos, as
    Finn et al.'s ``proc_images.py`` (cbfinn/maml, data/miniImagenet), which most users of Ravi's CSVs run,
    does with ``im.resize((84, 84), resample=Image.LANCZOS)``. An image already 84x84 is kept as it is."""
    with opened_image(raw, str(file), MAX_PIXELS) as image:
        rgb = image.convert("RGB")
        if rgb.size != (SIDE, SIDE):
            rgb = rgb.resize((SIDE, SIDE), resample=Image.Resampling.LANCZOS)
        pixels = np.asarray(rgb, dtype=np.uint8)
    return pixels.transpose(2, 0, 1)
