"""CUB-200-2011 (Wah et al. 2011) with Chen et al. 2019's class split, imported from the release researchers have:

    fewshot data import cub PATH [--name cub]

``PATH`` is the extracted ``CUB_200_2011/`` folder (or the folder holding it), or the release's
``CUB_200_2011.tgz`` itself, read in place and never extracted: the archive is streamed member by member twice,
once to check every member (a plain file or a folder under a safe relative name: no absolute path, no ``..``, no
link or device) and read the text files, then, once everything those say has been checked, to decode the images
it lists. The release is at https://data.caltech.edu/records/65de6-vp158 (md5 of the tgz ``RELEASE_MD5``).

The text files read are ``classes.txt`` (``<class_id> <folder>``, as ``1 001.Black_footed_Albatross``),
``images.txt`` (``<image_id> <folder>/<file>`` under ``images/``) and ``image_class_labels.txt`` (``<image_id>
<class_id>``): the classes must be exactly the 200 of the shipped split, every image in its class's folder, listed
once, labelled once and present, and every class must have two images at least. ``bounding_boxes.txt`` and
``train_test_split.txt`` are not read: Chen et al. use neither.

Protocol ``chen`` (the default and only one) is the split of Chen, Liu, Kira, Wang and Huang 2019, A Closer Look
at Few-shot Classification (ICLR), ``filelists/CUB/write_CUB_filelist.py`` of
https://github.com/wyharveychen/CloserLookFewShot: the 200 class folders of ``images/`` in sorted order, the
i-th (from 0) in base (train) if ``i % 2 == 0``, val if ``i % 4 == 1``, novel (test) if ``i % 4 == 3``: 100 / 50 /
50 classes. It ships as ``cub_chen_split.json`` beside this module (the class names checked against two published
copies of the release's ``classes.txt``), and a ``classes.txt`` naming other classes is refused.

Images are stored as Chen et al. evaluate them (``data/datamgr.py`` and ``data/dataset.py`` of the same
repository, with ``image_size = 84`` for their Conv backbones in ``train.py``): the whole image (no bounding-box
crop; they crop none) opened with Pillow and converted to RGB, resized to 96x96 (``int(84 * 1.15)`` on both sides,
so the aspect ratio is not kept; torchvision's ``Scale``/``Resize``, bilinear) and centre-cropped to 84x84
(``CenterCrop``: offset ``round((96 - 84) / 2) = 6``): their test-time ``['Scale', 'CenterCrop']`` before
``ToTensor`` and ``Normalize``. The stored uint8 ``[n, 3, 84, 84]`` is thus their test input exactly; their
training augmentation (``RandomSizedCrop`` of the whole image, jitter, flips) cannot be redone from it, and a
``--crop`` to the bounding boxes is not offered: no import option means that, and Chen et al. do not crop.
The whole 11,788 images are decoded into memory (about 250 MB) before they are written.

The record of the import, written last, holds the md5 of each text file read and a sha256 over every image's
name and md5 (``images``), and for a tgz the archive's md5; the import's key is made of the former only, so the
folder and the tgz of one release import to the same arrays.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from fewshot.core.data import ROLES, ClassImages, ClassInfo, HashedReader, ImagesFile, first_line, opened_image
from fewshot.core.dataset import Importer, imports_dir, save_import
from fewshot.core.errors import FewshotError
from fewshot.tasks.folder import MAX_PIXELS, ImportedFolder, checked_import_name
from fewshot.tasks.mini_imagenet import checked_roles

FORMAT = "cub"
PROTOCOL = "chen"
SIDE = 84
RESIZED = int(SIDE * 1.15)  # 96: Chen et al.'s Scale to [int(image_size * 1.15)] * 2
ROOT = "CUB_200_2011"
TEXTS = ("classes.txt", "images.txt", "image_class_labels.txt")
RELEASE_MD5 = "97eceeb196236b17998738112f37df78"  # CUB_200_2011.tgz of data.caltech.edu/records/65de6-vp158
SPLIT_FILE = Path(__file__).with_name("cub_chen_split.json")
# The release's text files are under 1 MB and its JPEGs under 1 MB; anything far larger is not CUB.
MAX_TEXT_BYTES = 16 << 20
MAX_IMAGE_BYTES = 64 << 20
CITATION = (
    "Wah, Branson, Welinder, Perona and Belongie 2011, The Caltech-UCSD Birds-200-2011 Dataset, CNS-TR-2011-001; "
    "split of Chen, Liu, Kira, Wang and Huang 2019, A Closer Look at Few-shot Classification, ICLR"
)


def chen_split() -> dict[str, list[str]]:
    """The shipped split: role -> its class folders, checked to share none."""
    content = json.loads(SPLIT_FILE.read_text())
    return checked_roles({role: content[role] for role in ROLES}, SPLIT_FILE)


@dataclass(frozen=True)
class Listing:
    """What the text files say: the classes in folder order, each image's path under ``images/`` in class then
    image-id order with the line of ``images.txt`` naming it, and each class's number of images."""

    classes: list[str]
    images: list[str]
    lines: list[int]
    counts: list[int]


class ImportedCUB(ImportedFolder):
    """CUB-200-2011 as imported by :class:`CUBImport`, described by its import record."""

    def __init__(self, name: str, record: Mapping[str, Any]):
        super().__init__(name, record)
        counts = "/".join(str(len(record["splits"][PROTOCOL][role])) for role in ROLES)
        release = ", the official release" if record.get("official_release") else ""
        self.summary = (
            f"CUB-200-2011 ({record['layout']} {record['source']}{release}): {record['images']:,} images of "
            f"{len(record['classes'])} classes ({counts}), {SIDE}x{SIDE} RGB as Chen et al. test"
        )
        self.citation = CITATION


class CUBImport(Importer):
    name = FORMAT
    summary = (
        f"PATH is the extracted {ROOT}/ folder or {ROOT}.tgz (read in place); Chen et al.'s 100/50/50 class split, "
        f"protocol {PROTOCOL}, 84x84 RGB as their test transform; then --dataset NAME (default {FORMAT})"
    )
    options = ("force",)
    default_name = FORMAT

    def dataset(self, name: str, record: Mapping[str, Any]) -> ImportedCUB:
        return ImportedCUB(name, record)

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        force = bool(options.get("force"))
        checked_import_name(name, force)
        given = Path(path) if path is not None else None
        if given is not None and given.is_dir():
            source: _Folder | _Archive = _Folder(given)
        elif given is not None and given.is_file():
            source = _Archive(given)
        else:
            raise FewshotError(
                f"{path or 'nothing given'}: give the extracted {ROOT}/ folder or {ROOT}.tgz: "
                f"fewshot data import {FORMAT} PATH"
            )
        split = chen_split()
        texts = source.texts()
        listing = parsed_listing(texts, split, source.where)
        source.check_images(listing)  # every image present and of a sane size, before any is decoded
        md5s = {file: hashlib.md5(texts[file]).hexdigest() for file in TEXTS}
        with ImagesFile(imports_dir(), (3, SIDE, SIDE)) as written:
            pixels = np.empty((len(listing.images), 3, SIDE, SIDE), dtype=np.uint8)
            image_md5s = [""] * len(listing.images)
            for index, raw in source.images(listing):
                pixels[index] = decoded(raw, f"{source.where}: images/{listing.images[index]}")
                image_md5s[index] = hashlib.md5(raw).hexdigest()
            written.append(pixels)
            del pixels
            images_digest = hashlib.sha256()
            for relative, md5 in zip(listing.images, image_md5s):
                images_digest.update(f"{relative}\0{md5}\n".encode())
            md5s["images"] = images_digest.hexdigest()
            key = hashlib.sha256(f"{FORMAT} {PROTOCOL} side={SIDE} resized={RESIZED}\n".encode())
            for file, md5 in md5s.items():
                key.update(f"{file}\0{md5}\n".encode())
            md5s.update(source.md5s)
            data = ClassImages(
                images=torch.from_numpy(written.opened()),
                labels=torch.arange(len(listing.classes)).repeat_interleave(torch.tensor(listing.counts)),
                classes=tuple(ClassInfo(c, "") for c in listing.classes),
                key=key.hexdigest()[:16],
            )
            record = {
                "name": name,
                "format": FORMAT,
                "layout": source.layout,
                "source": str(source.path.resolve()),
                "official_release": source.md5s.get(source.path.name) == RELEASE_MD5,
                "images": len(listing.images),
                "size": SIDE,
                "channels": 3,
                "classes": listing.classes,
                "class_images": listing.counts,
                "splits": {PROTOCOL: split},
                "files_md5": md5s,
            }
            arrays = save_import(record, data, force, written.path)
        shares = ", ".join(f"{len(split[role])} {role}" for role in ROLES)
        return (
            f"imported {name}: {len(listing.images):,} images of {len(listing.classes)} classes ({shares}) at "
            f"{SIDE}x{SIDE}x3 from {source.layout} {source.path} into {arrays}; protocol {PROTOCOL}: --dataset {name}"
        )


def decoded(raw: bytes, where: str) -> np.ndarray:
    """An image as uint8 ``[3, 84, 84]`` by Chen et al.'s test transform: RGB, resized (bilinear) to 96x96 whole,
    centre-cropped to 84x84 (torchvision's ``CenterCrop`` offset, ``round((96 - 84) / 2)``)."""
    offset = round((RESIZED - SIDE) / 2.0)
    with opened_image(raw, where, MAX_PIXELS) as image:
        rgb = image.convert("RGB").resize((RESIZED, RESIZED), resample=Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb.crop((offset, offset, offset + SIDE, offset + SIDE)), dtype=np.uint8)
    return pixels.transpose(2, 0, 1)


def parsed_listing(texts: Mapping[str, bytes], split: Mapping[str, list[str]], where: str) -> Listing:
    """The classes and images the text files list, checked against each other and against the shipped split."""
    known = {c for role in ROLES for c in split[role]}
    class_of: dict[str, str] = {}  # class id -> folder
    for line, (class_id, folder) in _rows(texts, "classes.txt", where):
        if folder not in known:
            raise FewshotError(
                f"{where}: classes.txt, line {line}: class {folder} is not one of the 200 of Chen et al.'s split "
                f"({SPLIT_FILE.name}): is this CUB-200-2011?"
            )
        if class_id in class_of or folder in class_of.values():
            raise FewshotError(f"{where}: classes.txt, line {line}: class {class_id} {folder} is listed twice")
        class_of[class_id] = folder
    missing = sorted(known - set(class_of.values()))
    if missing:
        raise FewshotError(
            f"{where}: classes.txt lacks {missing[0]} ({len(missing)} of the 200 classes of Chen et al.'s split)"
        )
    path_of: dict[str, tuple[str, int]] = {}  # image id -> path under images/, its line
    seen: set[str] = set()
    for line, (image_id, relative) in _rows(texts, "images.txt", where):
        parts = relative.split("/")
        if len(parts) != 2 or parts[0] not in known or parts[1] in ("", ".", "..") or "\\" in relative:
            raise FewshotError(
                f"{where}: images.txt, line {line}: {relative!r} is not <class folder>/<file> of a class of classes.txt"
            )
        if image_id in path_of or relative in seen:
            raise FewshotError(f"{where}: images.txt, line {line}: image {image_id} {relative} is listed twice")
        path_of[image_id] = (relative, line)
        seen.add(relative)
    labelled: dict[str, str] = {}
    for line, (image_id, class_id) in _rows(texts, "image_class_labels.txt", where):
        at = f"{where}: image_class_labels.txt, line {line}"
        if image_id not in path_of:
            raise FewshotError(f"{at}: image {image_id} is not in images.txt")
        if image_id in labelled:
            raise FewshotError(f"{at}: image {image_id} is labelled twice")
        if class_of.get(class_id) != path_of[image_id][0].split("/")[0]:
            raise FewshotError(
                f"{at}: image {image_id} ({path_of[image_id][0]}) is labelled class {class_id} "
                f"({class_of.get(class_id, 'not in classes.txt')})"
            )
        labelled[image_id] = class_id
    unlabelled = [i for i in path_of if i not in labelled]
    if unlabelled:
        raise FewshotError(f"{where}: image_class_labels.txt has no label for image {unlabelled[0]} of images.txt")
    classes = sorted(class_of.values())
    order = {c: i for i, c in enumerate(classes)}
    rows = sorted(path_of.items(), key=lambda item: (order[item[1][0].split("/")[0]], int(item[0])))
    counts = [0] * len(classes)
    for _, (relative, _) in rows:
        counts[order[relative.split("/")[0]]] += 1
    few = [c for c, n in zip(classes, counts) if n < 2]
    if few:
        raise FewshotError(f"{where}: class {few[0]} has {counts[order[few[0]]]} image: a class needs at least 2")
    return Listing(classes, [r for _, (r, _) in rows], [line for _, (_, line) in rows], counts)


def _rows(texts: Mapping[str, bytes], file: str, where: str) -> Iterator[tuple[int, tuple[str, str]]]:
    """Each non-blank line of a text file as its number and its two fields (a positive integer id first)."""
    try:
        text = texts[file].decode("utf-8")
    except UnicodeDecodeError as err:
        raise FewshotError(f"{where}: {file} is not UTF-8 text ({first_line(err)})") from None
    for line, content in enumerate(text.splitlines(), start=1):
        fields = content.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) < 1:
            raise FewshotError(f"{where}: {file}, line {line}: {content.strip()[:80]!r} is not '<id> <value>'")
        yield line, (str(int(fields[0])), fields[1])


class _Folder:
    """The extracted release: ``CUB_200_2011/`` itself, or a folder holding it."""

    layout = "folder"

    def __init__(self, given: Path):
        self.path = given / ROOT if not (given / "images.txt").exists() and (given / ROOT).is_dir() else given
        self.where = str(self.path)
        self.md5s: dict[str, str] = {}

    def texts(self) -> dict[str, bytes]:
        texts = {}
        for file in TEXTS:
            path = self.path / file
            if not path.is_file():
                raise FewshotError(
                    f"{self.path} has no {file}: give the extracted {ROOT}/ folder (or {ROOT}.tgz) of CUB-200-2011"
                )
            texts[file] = _read(path, MAX_TEXT_BYTES)
        return texts

    def check_images(self, listing: Listing) -> None:
        for relative, line in zip(listing.images, listing.lines):
            if not (self.path / "images" / relative).is_file():
                raise FewshotError(f"{self.path}: images.txt, line {line}: images/{relative} does not exist")

    def images(self, listing: Listing) -> Iterator[tuple[int, bytes]]:
        for index, relative in enumerate(listing.images):
            yield index, _read(self.path / "images" / relative, MAX_IMAGE_BYTES)


def _read(path: Path, limit: int) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise FewshotError(f"{path} holds {path.stat().st_size:,} bytes: over {limit:,}, it is not CUB's")
        return path.read_bytes()
    except OSError as err:
        raise FewshotError(f"cannot read {path}: {err.strerror or err}") from None


class _Archive:
    """``CUB_200_2011.tgz`` (or any tar the ``tarfile`` module reads), streamed member by member, never extracted."""

    layout = "tgz"

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        self.md5s: dict[str, str] = {}
        self.sizes: dict[str, int] = {}  # every plain file's path in the archive -> its size

    def _members(self, hashed: bool = False) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str]]:
        """Each member with its normalised path, every member checked; the archive's md5 when ``hashed``."""
        try:
            with open(self.path, "rb") as file:
                reader = HashedReader(file)
                with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                    for member in tar:
                        yield tar, member, self._checked(member)
                if hashed:
                    self.md5s[self.path.name] = reader.rest()
        except (tarfile.TarError, EOFError, zlib.error) as err:
            raise FewshotError(
                f"{self.path} is not a whole tar archive ({type(err).__name__}: {first_line(err)}): "
                f"download {ROOT}.tgz again"
            ) from None
        except OSError as err:
            raise FewshotError(f"cannot read {self.path}: {err.strerror or first_line(err)}") from None

    def _checked(self, member: tarfile.TarInfo) -> str:
        name = member.name
        parts = [p for p in PurePosixPath(name).parts if p != "."]
        if (
            not parts
            or name.startswith(("/", "\\"))
            or ".." in parts
            or "\\" in name
            or "\0" in name
            or ":" in parts[0]
        ):
            raise FewshotError(f"{self.path}: member {name!r} has an unsafe name (absolute, or with ..): refused")
        if member.issym() or member.islnk():
            raise FewshotError(
                f"{self.path}: member {name} is a link (to {member.linkname!r}); {ROOT}.tgz holds none: refused"
            )
        if not (member.isreg() or member.isdir()):
            raise FewshotError(f"{self.path}: member {name} is a device, fifo or other special file: refused")
        return "/".join(parts)

    def texts(self) -> dict[str, bytes]:
        wanted = {f"{ROOT}/{file}": file for file in TEXTS}
        texts: dict[str, bytes] = {}
        for tar, member, name in self._members(hashed=True):
            if not member.isreg():
                continue
            if name in self.sizes:
                raise FewshotError(f"{self.path} holds {name} twice: refused")
            self.sizes[name] = member.size
            if name in wanted:
                texts[wanted[name]] = self._read(tar, member, name, MAX_TEXT_BYTES)
        for member_name, file in wanted.items():
            if file not in texts:
                raise FewshotError(
                    f"{self.path} holds no {member_name}: give CUB-200-2011's {ROOT}.tgz (or the extracted folder)"
                )
        return texts

    def _read(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, limit: int) -> bytes:
        if member.size > limit:
            raise FewshotError(f"{self.path}: member {name} holds {member.size:,} bytes: over {limit:,}, not CUB's")
        content = tar.extractfile(member)
        assert content is not None  # a plain file's
        return content.read()

    def check_images(self, listing: Listing) -> None:
        for relative, line in zip(listing.images, listing.lines):
            size = self.sizes.get(f"{ROOT}/images/{relative}")
            if size is None:
                raise FewshotError(
                    f"{self.path}: images.txt, line {line} names images/{relative}, which the archive does not hold"
                )
            if size > MAX_IMAGE_BYTES:
                raise FewshotError(f"{self.path}: images/{relative} holds {size:,} bytes: over {MAX_IMAGE_BYTES:,}")

    def images(self, listing: Listing) -> Iterator[tuple[int, bytes]]:
        index_of = {f"{ROOT}/images/{relative}": i for i, relative in enumerate(listing.images)}
        found = 0
        for tar, member, name in self._members():
            if member.isreg() and name in index_of:
                yield index_of[name], self._read(tar, member, name, MAX_IMAGE_BYTES)
                found += 1
        if found != len(index_of):  # the file changed between the two readings
            raise FewshotError(f"{self.path} changed while it was read: import it again")
