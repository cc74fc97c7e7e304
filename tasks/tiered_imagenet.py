"""tieredImageNet (Ren et al. 2018), imported from the files researchers have:

    fewshot data import tiered-imagenet DIR [--name tiered-imagenet]

``DIR`` holds, for each split ``train``, ``val`` and ``test``, ``{split}_labels.pkl`` and either

* ``{split}_images_png.pkl``, the release's (renmengye/few-shot-ssl-public): a pickled list of PNG-encoded
  84x84 images (numpy uint8 byte arrays from ``cv2.imencode``, or bytes), read one PNG at a time by a
  streaming unpickler that keeps none of them (:func:`fewshot.core.safe_pickle.stream_list`) and decoded with
  Pillow to RGB; or
* ``{split}_images.npz``, what Ren's ``compress_tiered_imagenet.py decompress`` writes from it (MetaOptNet's
  and many others' input): uint8 ``images [N, 84, 84, 3]`` in OpenCV's BGR order (``cv2.imdecode``),
  read in blocks from the file (never whole) and turned to RGB, so both layouts import the same pixels.

Where both are present the PNG pickles, the release itself, are read. ``{split}_labels.pkl`` (python 2's,
read as latin-1 through :mod:`fewshot.core.safe_pickle`, which runs nothing) is a dict of ``label_specific``
(each image's class, an index into ``label_specific_str``, the class names), ``label_general`` (each image's
category, an index into ``label_general_str``) and those two lists of names. The classes are the specific
labels, 351 / 97 / 160 of 779,165 images in the real release, in 20 / 6 / 8 categories; each class's
category is its group and is in the import record. The protocol ``ren`` (the default) is that split. Images
are written to disk as they are decoded, in class order, and opened memory-mapped: an import holds one block
of images in memory, never a split. Every source file's md5 is recorded, each file read once.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshot.core import safe_pickle
from fewshot.core.data import ROLES, HashedReader, ImagesFile, file_digest, opened_image
from fewshot.core.dataset import Importer, imports_dir
from fewshot.core.errors import FewshotError
from fewshot.tasks.cifar import text_keys
from fewshot.tasks.folder import MAX_PIXELS, ImportedFolder, checked_import_name
from fewshot.tasks.mini_imagenet import SIDE, Block, checked_roles, save_blocks

FORMAT = "tiered-imagenet"
PROTOCOL = "ren"
LABEL_KEYS = ("label_specific", "label_general", "label_specific_str", "label_general_str")
LAYOUTS = {"png": "{}_images_png.pkl", "npz": "{}_images.npz"}  # in the order they are looked for
BLOCK = 1024  # images read from an npz at a time (21 MB)
CITATION = (
    "Ren, Triantafillou, Ravi, Snell, Swersky, Tenenbaum, Larochelle and Zemel 2018, Meta-Learning for "
    "Semi-Supervised Few-Shot Classification, ICLR"
)


@dataclass(frozen=True)
class Labels:
    """One split's labels pickle, checked: each image's class and category, and their names."""

    file: Path
    specific: np.ndarray  # int64 [N], indices into names
    names: list[str]  # label_specific_str
    categories: list[str]  # label_general_str
    category_of: list[int]  # each class's category


class ImportedTieredImageNet(ImportedFolder):
    """tieredImageNet as imported by :class:`TieredImageNetImport`, described by its import record."""

    def __init__(self, name: str, record: Mapping[str, Any]):
        super().__init__(name, record)
        counts = "/".join(str(len(record["splits"][PROTOCOL][role])) for role in ROLES)
        categories = "/".join(str(len(record["categories"][role])) for role in ROLES)
        self.summary = (
            f"tieredImageNet ({record['layout']} in {record['source']}): {record['images']:,} images of "
            f"{len(record['classes'])} classes ({counts}) in categories ({categories}), {SIDE}x{SIDE} RGB"
        )
        self.citation = CITATION


class TieredImageNetImport(Importer):
    name = FORMAT
    summary = (
        "DIR holds {train,val,test}_labels.pkl beside {train,val,test}_images_png.pkl (Ren's release) or "
        f"_images.npz; 84x84 RGB, protocol {PROTOCOL}; then --dataset NAME (default {FORMAT})"
    )
    options = ("force",)
    default_name = FORMAT

    def dataset(self, name: str, record: Mapping[str, Any]) -> ImportedTieredImageNet:
        return ImportedTieredImageNet(name, record)

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        force = bool(options.get("force"))
        checked_import_name(name, force)
        if path is None or not Path(path).is_dir():
            raise FewshotError(
                f"{path or 'no folder given'}: give the folder holding {{train,val,test}}_labels.pkl and "
                f"_images_png.pkl (or _images.npz): fewshot data import {FORMAT} DIR"
            )
        folder = Path(path)
        layout = _layout(folder)
        labels = {role: _labels(folder / f"{role}_labels.pkl") for role in ROLES}
        names = class_names(labels)
        checked_roles(names, folder)  # every check the labels allow comes before any image is read
        md5s = {labels[role].file.name: file_digest(labels[role].file) for role in ROLES}
        blocks, groups = {}, {}
        with ImagesFile(imports_dir(), (3, SIDE, SIDE)) as written:
            for role in ROLES:
                source = folder / LAYOUTS[layout].format(role)
                read = _png_images if layout == "png" else _npz_images
                md5s[source.name] = read(source, labels[role], written)
                counts = np.bincount(labels[role].specific, minlength=len(names[role])).tolist()
                blocks[role] = Block(names[role], counts)
                cats = labels[role].categories
                groups.update({c: cats[k] for c, k in zip(names[role], labels[role].category_of)})
            extra = {
                "categories": {role: labels[role].categories for role in ROLES},
                "channel_order": "RGB (Pillow's, of the PNGs)" if layout == "png" else "BGR in the npz, stored RGB",
            }
            images = torch.from_numpy(written.opened())
            return save_blocks(
                name, folder, FORMAT, PROTOCOL, layout, blocks, md5s, images, force, written.path, groups, extra
            )


def _layout(folder: Path) -> str:
    for layout, pattern in LAYOUTS.items():
        files = [folder / pattern.format(role) for role in ROLES]
        if any(file.exists() for file in files):
            for role, file in zip(ROLES, files):
                if not file.exists():
                    raise FewshotError(f"{folder} has no {file.name}: the {role} split's images are missing")
            return layout
    raise FewshotError(
        f"{folder} holds neither {{train,val,test}}_images_png.pkl nor {{train,val,test}}_images.npz "
        f"(each beside its _labels.pkl): tieredImageNet's files"
    )


def _labels(path: Path) -> Labels:
    """A split's labels pickle, checked: one class and one category per image, every class at least 2 images,
    each class in one category."""
    if not path.is_file():
        raise FewshotError(f"{path.parent} has no {path.name}: the split's labels are missing")
    content = text_keys(safe_pickle.load(path, encoding="latin1"), path, LABEL_KEYS, "tieredImageNet's labels pickle")
    specific, general = (_indices(content[key], path, key) for key in LABEL_KEYS[:2])
    names, categories = (_names(content[key], path, key) for key in LABEL_KEYS[2:])
    if len(specific) != len(general):
        raise FewshotError(f"{path}: label_specific has {len(specific)} labels but label_general {len(general)}")
    for labels, key, of in ((specific, "label_specific", names), (general, "label_general", categories)):
        if labels.min() < 0 or labels.max() >= len(of):
            raise FewshotError(f"{path}: {key} holds {labels.max()}, past the {len(of)} names of {key}_str")
    counts = np.bincount(specific, minlength=len(names))
    if counts.min() < 2:
        c = int(counts.argmin())
        raise FewshotError(f"{path}: class {names[c]} has {counts[c]} images: a class needs at least 2")
    pairs = np.unique(np.stack([specific, general], 1), axis=0)
    if len(pairs) != len(names):
        c = int(pairs[np.flatnonzero(np.diff(pairs[:, 0]) == 0)[0], 0])
        raise FewshotError(f"{path}: class {names[c]} has images of two categories in label_general")
    return Labels(path, specific, names, categories, pairs[:, 1].tolist())


def _indices(value: Any, path: Path, key: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged
        array = np.asarray(())
    if array.ndim != 1 or not len(array) or array.dtype.kind not in "iu":
        raise FewshotError(f"{path}: {key} must be a non-empty list of integers, one per image")
    return array.astype(np.int64)


def _names(value: Any, path: Path, key: str) -> list[str]:
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if not items or not all(isinstance(item, (str, bytes, np.str_, np.bytes_)) and item for item in items):
        raise FewshotError(f"{path}: {key} must be a non-empty list of names")
    return [item.decode("latin1") if isinstance(item, bytes) else str(item) for item in items]


def class_names(labels: Mapping[str, Labels]) -> dict[str, list[str]]:
    """Each split's class names, in label order: label_specific_str's, with the category added where one name
    is given to classes of two categories (ImageNet's two cranes, bird and machine), and the split and label
    where it is still not one class's within a split. A name left in two splits is a class in both."""
    pairs = {
        (label.names[c], label.categories[k]) for label in labels.values() for c, k in enumerate(label.category_of)
    }
    shared = {name for name, n in Counter(name for name, _ in pairs).items() if n > 1}
    named = {}
    for role in ROLES:
        names = [
            f"{name} ({labels[role].categories[k]})" if name in shared else name
            for name, k in zip(labels[role].names, labels[role].category_of)
        ]
        twice = {name for name, n in Counter(names).items() if n > 1}
        named[role] = [f"{name} ({role} {c})" if name in twice else name for c, name in enumerate(names)]
    return named


def _rows(labels: Labels, written: ImagesFile) -> np.ndarray:
    """Where each image of a split goes in ``written``: room made for the split, its images in class order."""
    order = np.argsort(labels.specific, kind="stable")
    rows = np.empty_like(order)
    rows[order] = np.arange(len(order)) + written.reserve(len(order))
    return rows


def _png_images(path: Path, labels: Labels, written: ImagesFile) -> str:
    """A split's pickle of PNGs, streamed: each decoded and written to its row as it is read. Returns the
    pickle's md5."""
    rows = _rows(labels, written)

    def each(i: int, item: Any) -> None:
        if i >= len(rows):
            raise FewshotError(f"{path} holds more than the {len(rows)} images {labels.file.name} labels")
        written.put(int(rows[i]), _decoded(item, f"{path}, image {i}")[None])

    count, md5 = safe_pickle.stream_list(path, each, encoding="latin1")
    if count != len(rows):
        raise FewshotError(f"{path} holds {count} images where {labels.file.name} labels {len(rows)}")
    return md5


def _decoded(item: Any, where: str) -> np.ndarray:
    """One PNG (a uint8 array, bytes, or python 2's str) as uint8 ``[3, 84, 84]`` RGB; grey or RGBA is made
    RGB (as ``cv2.imdecode(item, 1)`` does)."""
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        raw = item.tobytes()
    elif isinstance(item, (bytes, bytearray)):
        raw = bytes(item)
    elif isinstance(item, str):  # python 2's str, read as latin-1: its bytes, one to a character
        raw = item.encode("latin1")
    else:
        raise FewshotError(f"{where} is of type {type(item).__name__}, not a PNG's bytes")
    with opened_image(raw, where, MAX_PIXELS) as image:
        if image.size != (SIDE, SIDE):
            raise FewshotError(f"{where} is {image.size[0]}x{image.size[1]}: tieredImageNet's images are 84x84")
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return pixels.transpose(2, 0, 1)


def _npz_images(path: Path, labels: Labels, written: ImagesFile) -> str:
    """A split's npz, its ``images`` read block by block (a stored member straight from the file, hashed by
    the same pass; a compressed one through zipfile), turned from BGR to RGB and written to their rows.
    Returns the file's md5."""
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            try:
                info = archive.getinfo("images.npy")
            except KeyError:
                held = ", ".join(n.removesuffix(".npy") for n in archive.namelist()) or "nothing"
                raise FewshotError(f"{path} has no 'images' array (it holds {held})") from None
            with archive.open(info) as member:
                header = _npy_header(member, path, len(labels.specific))
            rows = _rows(labels, written)
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:  # zipfile checks its CRC-32 at the end
                    member.read(header)
                    _copy(member, rows, written)
                return file_digest(path)
            f.seek(info.header_offset)
            local = f.read(30)
            start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
            f.seek(0)
            hashed = HashedReader(f)
            hashed.read(start)
            crc = _copy(hashed, rows, written, zlib.crc32(hashed.read(header)))
            if crc != info.CRC:
                raise FewshotError(f"{path}: images fails its CRC-32 check: the file is damaged")
            return hashed.rest()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as err:
        raise FewshotError(
            f"{path} is not a whole npz ({type(err).__name__}: {err}): is the file truncated? "
            f"compare its md5 with the release's"
        ) from None


def _npy_header(member: Any, path: Path, count: int) -> int:
    """The length of the images' npy header, checked to declare uint8 ``[count, 84, 84, 3]``."""
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(member)
    if dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != (SIDE, SIDE, 3) or fortran:
        raise FewshotError(f"{path}: images is {dtype} {list(shape)}; tieredImageNet's npz holds uint8 [N, 84, 84, 3]")
    if shape[0] != count:
        raise FewshotError(f"{path} holds {shape[0]} images where its labels pickle labels {count}")
    return int(member.tell())


def _copy(source: Any, rows: np.ndarray, written: ImagesFile, crc: int = 0) -> int:
    """Read ``len(rows)`` BGR images ``[84, 84, 3]`` from ``source`` a block at a time into their rows of
    ``written`` as RGB ``[3, 84, 84]``; returns the CRC-32 of what was read, continued from ``crc``."""
    size = SIDE * SIDE * 3
    for start in range(0, len(rows), BLOCK):
        n = min(BLOCK, len(rows) - start)
        raw = source.read(n * size)
        if len(raw) != n * size:
            raise EOFError(f"the images end after {start + len(raw) // size} of {len(rows)}")
        crc = zlib.crc32(raw, crc)
        block = np.frombuffer(raw, np.uint8).reshape(n, SIDE, SIDE, 3)[..., ::-1].transpose(0, 3, 1, 2)
        at = rows[start : start + n]
        if np.array_equal(at, at[0] + np.arange(n)):  # a class-ordered file: one write
            written.put(int(at[0]), block)
        else:
            for row, image in zip(at.tolist(), block):
                written.put(row, image[None])
    return crc
