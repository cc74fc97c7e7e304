"""Your own images as a dataset: a folder of class sub-folders, or a CSV, imported once.

    fewshot data import folder DIR --name pets [--size 84] [--channels 1|3]
    fewshot data import folder --csv FILE --name pets

``DIR/<class>/<image>`` (png, jpg, jpeg, bmp or gif; hidden files and files
directly in DIR are ignored), or a CSV with a header ``path,label`` and an
optional ``split`` column of ``train``, ``val`` or ``test`` (paths relative to
the CSV's folder). Every image is read once with Pillow, converted to grey or
RGB, scaled so that its shorter side is ``--size`` and centre-cropped to a
square (shapes keep their proportions; the ends of a long side are lost), and
stored as uint8 arrays in the cache with a JSON record of the import
(``imports/NAME.json``, written last: a failed import leaves nothing).
``--dataset NAME`` then evaluates on it, at the import's size.

Protocols:

* ``classes`` (without a split column): the classes, ordered by name and
  shuffled by a fixed seed, split 64% / 16% / 20% into train / val / test
  (rounded, at least one each, so at least three classes);
* ``split`` (with one): the CSV's split; each class belongs to one split, and
  train and test must have classes.

The split is written into the import record, so it never changes after the
import. ``FolderImport`` is registered as the import format ``folder``.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from fewshot.core.data import ROLES, Benchmark, ClassImages, ClassInfo, Split, opened_image
from fewshot.core.dataset import IMPORT_NAME, Dataset, Importer, load_import, replaced_import, save_import
from fewshot.core.errors import FewshotError

FORMAT = "folder"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DEFAULT_SIZE, MIN_SIZE, DEFAULT_CHANNELS = 84, 8, 3
# Largest --size: the decoded arrays are held in memory (n x channels x size x size bytes), and a few-shot
# benchmark's images are 28 to 224 pixels a side; a larger one would allocate gigabytes before it failed.
MAX_SIZE = 1024
# Refuse images above 8192 x 8192 pixels before decoding them: a small file can declare a huge image
# (a decompression bomb), and no few-shot image needs more.
MAX_PIXELS = 8192 * 8192
CLASS_SHARES = {"val": 0.16, "test": 0.20}  # of the classes; train takes the rest (64%)
SPLIT_SEED = 0


@dataclass(frozen=True)
class Row:
    """One image to import: its file, its class and (from a CSV's split column) its split."""

    file: Path
    label: str
    split: str | None = None


class ImportedFolder(Dataset):
    """A dataset imported by ``FolderImport``, described by its import record."""

    def __init__(self, name: str, record: Mapping[str, Any]):
        self.record = record
        self.name = name
        colour = "RGB" if record["channels"] == 3 else "grey"
        self.summary = (
            f"imported from {record['source']}: {record['images']:,} images of {len(record['classes'])} "
            f"classes, {record['size']}x{record['size']} {colour}"
        )
        self.citation = f"the images of {record['source']} (cite their own source)"
        self.protocols = tuple(record["splits"])
        self.default_protocol = self.protocols[0]

    def status(self, root: Path) -> tuple[bool, str]:
        return True, f"imported {self.record['layout']} {self.record['source']} as {self.record['arrays']}"

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        """The import under ``protocol``. ``size`` is not used: the images keep the size they were imported at."""
        if protocol not in self.protocols:
            raise FewshotError(f"unknown {self.name} protocol {protocol!r}: choose one of {', '.join(self.protocols)}")
        data = load_import(self.record)
        shape = (len(data.labels), *data.image_shape)
        if shape != (self.record["images"], self.record["channels"], self.record["size"], self.record["size"]):
            raise FewshotError(
                f"the import record of {self.name} does not match its arrays (images {list(shape)}): "
                f"import it again with --force"
            )
        row_of = {info.name: row for row, info in enumerate(data.classes)}
        try:
            splits = {
                role: Split.of([row_of[c] for c in names])
                for role, names in self.record["splits"][protocol].items()
                if names
            }
        except (KeyError, TypeError, AttributeError) as err:
            raise FewshotError(
                f"the import record of {self.name} does not match its arrays (no class {err}): "
                f"import it again with --force"
            ) from None
        shares = ", ".join(f"{len(s)} {role}" for role, s in splits.items())
        return Benchmark(self.name, protocol, data, splits, notes=f"{protocol} split of the classes: {shares}")


class FolderImport(Importer):
    name = FORMAT
    summary = (
        "DIR holds a sub-folder of images per class (png, jpg, jpeg, bmp, gif), or --csv FILE lists "
        f"path,label[,split]; {DEFAULT_SIZE}x{DEFAULT_SIZE} RGB unless --size, --channels 1; then --dataset NAME"
    )
    options = ("csv", "size", "channels", "force")

    def dataset(self, name: str, record: Mapping[str, Any]) -> ImportedFolder:
        return ImportedFolder(name, record)

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        csv_file, size = options.get("csv"), options.get("size", DEFAULT_SIZE)
        channels, force = options.get("channels", DEFAULT_CHANNELS), bool(options.get("force"))
        checked_import_name(name, force)
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise FewshotError(f"--size {size}: images must be {MIN_SIZE} to {MAX_SIZE} pixels on a side")
        if channels not in (1, 3):
            raise FewshotError(f"--channels {channels}: choose 1 (grey) or 3 (RGB)")
        if (path is None) == (csv_file is None):
            raise FewshotError(
                f"give either a folder of class sub-folders or --csv FILE: "
                f"fewshot data import {FORMAT} DIR --name {name}"
            )
        if path is not None:  # exactly one of path and csv_file, checked above
            given = Path(path)
            base, layout, rows = given, "folder", folder_rows(given)
        else:
            assert csv_file is not None
            given = Path(csv_file)
            base, layout, rows = given.parent, "csv", csv_rows(given)
        classes, splits = checked_splits(rows, source=str(path or csv_file))
        data, digest = decode(rows, classes, base, size, channels)
        record = {
            "name": name,
            "format": FORMAT,
            "layout": layout,
            "source": str(given.resolve()),
            "images": len(rows),
            "size": size,
            "channels": channels,
            "classes": classes,
            "class_images": data.class_counts().tolist(),
            "splits": splits,
            "files_sha256": digest,
        }
        arrays = save_import(record, data, force)
        return (
            f"imported {name}: {len(rows):,} images of {len(classes)} classes at {size}x{size}x{channels} into "
            f"{arrays}; protocol {', '.join(splits)}: --dataset {name}"
        )


def checked_import_name(name: str, force: bool) -> None:
    """Refuse an import name that is malformed, a registered dataset's, or (without ``force``) in use."""
    from fewshot.core import registry

    if not IMPORT_NAME.fullmatch(name):
        raise FewshotError(f"--name {name!r}: use letters, digits, - and _, starting with a letter or digit")
    if name in registry.names("dataset"):
        raise FewshotError(f"--name {name}: a registered dataset has that name; choose another")
    replaced_import(name, force)


def folder_rows(folder: Path) -> list[Row]:
    """Every image of ``folder``'s class sub-folders, classes and files in name order."""
    if not folder.is_dir():
        raise FewshotError(f"{folder} is not a folder: give a folder of class sub-folders of images")
    rows = []
    for class_dir in sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
    ):
        for file in sorted(class_dir.iterdir(), key=lambda p: p.name):
            if file.name.startswith("."):  # .DS_Store and the like
                continue
            if file.is_dir():
                raise FewshotError(
                    f"{file} is a folder inside the class folder {class_dir.name}: a class's images "
                    f"lie directly in its folder"
                )
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise FewshotError(f"{file} is not an image ({', '.join(IMAGE_SUFFIXES)}): move it out of {folder}")
            rows.append(Row(file, class_dir.name))
        if not rows or rows[-1].label != class_dir.name:
            raise FewshotError(
                f"class {class_dir.name} of {folder} has no images: a class needs at least 2 "
                f"(a support and a query image)"
            )
    return rows


def csv_rows(csv_file: Path) -> list[Row]:
    """The rows of a CSV with columns path, label and optionally split; paths relative to the CSV's folder."""
    if not csv_file.is_file():
        raise FewshotError(f"{csv_file} is not a file: --csv names a CSV with columns path,label[,split]")
    rows, seen = [], set()
    for line, entry in csv_entries(csv_file, ("path", "label"), "path,label or path,label,split"):
        where = f"{csv_file}, line {line}"
        relative, label = entry["path"], entry["label"]
        split = entry.get("split")
        if not relative or not label:
            raise FewshotError(f"{where}: the path and the label must not be empty")
        file = csv_file.parent / relative
        if not file.is_file():
            raise FewshotError(f"{where}: {file} does not exist")
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            raise FewshotError(f"{where}: {file} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        if split is not None and split not in ROLES:
            raise FewshotError(f"{where}: split {split!r}: write {', '.join(ROLES)}")
        if file.resolve() in seen:
            raise FewshotError(f"{where}: {file} is listed twice")
        seen.add(file.resolve())
        rows.append(Row(file, label, split))
    return sorted(rows, key=lambda r: (r.label, str(r.file)))


def csv_entries(csv_file: Path, columns: tuple[str, ...], header: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Each row of ``csv_file`` after its header, with its line number: column -> stripped text. A header
    without ``columns`` (``header`` says what it should be) or an unreadable file is one line."""
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise FewshotError(f"{csv_file} has no {' or '.join(missing)} column: its header must be {header}")
            for line, entry in enumerate(reader, start=2):
                yield line, {k: (v or "").strip() for k, v in entry.items() if isinstance(k, str)}
    except (csv.Error, UnicodeDecodeError, OSError) as err:
        raise FewshotError(f"{csv_file} is not a readable CSV ({type(err).__name__}: {err})") from None


def checked_splits(rows: list[Row], source: str) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """The class names in order, and each protocol's split of them (role -> class names)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    classes = sorted(counts)
    few = [c for c in classes if counts[c] < 2]
    if few:
        raise FewshotError(
            f"class {few[0]} of {source} has {counts[few[0]]} image: a class needs at least 2 "
            f"(a support and a query image)"
        )
    if rows and rows[0].split is not None:
        return classes, {"split": _csv_split(rows, source)}
    if len(classes) < 3:
        raise FewshotError(
            f"{source} has {len(classes)} class{'es' if len(classes) != 1 else ''}: splitting classes "
            f"into train, val and test needs at least 3"
        )
    return classes, {"classes": class_split(classes)}


def _csv_split(rows: list[Row], source: str) -> dict[str, list[str]]:
    role_of: dict[str, str | None] = {}
    for row in rows:
        if role_of.setdefault(row.label, row.split) != row.split:
            raise FewshotError(
                f"{source}: class {row.label} is in both {role_of[row.label]} and {row.split}; "
                f"the split column splits classes, so each class is in one"
            )
    split = {role: sorted(c for c, r in role_of.items() if r == role) for role in ROLES}
    empty = [role for role in ("train", "test") if not split[role]]
    if empty:
        raise FewshotError(f"{source}: no class is in {empty[0]}; the split column needs train and test classes")
    return split


def class_split(classes: list[str]) -> dict[str, list[str]]:
    """``CLASS_SHARES`` of the classes, shuffled by ``SPLIT_SEED``, for val and test (rounded half up, at least
    one each) and the rest for train; each role's classes in name order."""
    n = len(classes)
    sizes = {role: max(1, int(share * n + 0.5)) for role, share in CLASS_SHARES.items()}
    shuffled = [classes[i] for i in np.random.default_rng(SPLIT_SEED).permutation(n)]
    train_count = n - sizes["val"] - sizes["test"]
    return {
        "train": sorted(shuffled[:train_count]),
        "val": sorted(shuffled[train_count : train_count + sizes["val"]]),
        "test": sorted(shuffled[train_count + sizes["val"] :]),
    }


def decode(rows: list[Row], classes: list[str], base: Path, size: int, channels: int) -> tuple[ClassImages, str]:
    """Every image as uint8 ``[n, channels, size, size]`` (rows are in class order), and a sha256 over the import:
    each file's path, class, split and bytes, and the decoding settings."""
    images = np.empty((len(rows), channels, size, size), dtype=np.uint8)
    digest = hashlib.sha256(f"{FORMAT} size={size} channels={channels}\n".encode())
    for i, row in enumerate(rows):
        raw = _read(row.file)
        images[i] = _decoded(raw, row.file, size, channels)
        relative = row.file.relative_to(base) if row.file.is_relative_to(base) else row.file
        digest.update(f"{relative}\0{row.label}\0{row.split}\0{hashlib.md5(raw).hexdigest()}\n".encode())
    label_of = {c: i for i, c in enumerate(classes)}
    data = ClassImages(
        images=torch.from_numpy(images),
        labels=torch.tensor([label_of[r.label] for r in rows]),
        classes=tuple(ClassInfo(c, "") for c in classes),
        key=digest.hexdigest()[:16],
    )
    return data, digest.hexdigest()


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as err:
        raise FewshotError(f"cannot read {file}: {err.strerror or err}") from None


def _decoded(raw: bytes, file: Path, size: int, channels: int) -> np.ndarray:
    mode = "L" if channels == 1 else "RGB"
    with opened_image(raw, str(file), MAX_PIXELS) as image:
        image.draft(mode, (size, size))  # a JPEG decodes at the smallest scale still >= size: far faster
        upright = ImageOps.exif_transpose(image).convert(mode)
        square = ImageOps.fit(upright, (size, size), method=Image.Resampling.BICUBIC)
        pixels = np.asarray(square, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
