"""Decoded datasets, the splits of a protocol, and the on-disk cache of decoded arrays.

A dataset is decoded once from its raw files into a :class:`ClassImages` and
cached under the cache folder, keyed by dataset, version, image size and
whatever else its decoding depends on; every later run loads the arrays in
well under a second. A :class:`Benchmark` bundles the decoded images with the
class splits of one protocol.

Every artefact the suite writes (a ``.npz`` of decoded arrays, a checkpoint or
an embedding table from ``torch.save``) is a zip archive whose members carry
CRC-32s. ``torch.load`` checks none of them, so :func:`verify_zip` checks every
member of a checkpoint or an embedding table before it is read; ``np.load``
checks each member it reads to the end, and :meth:`ClassImages.load` reads them
all, after checking the size each array declares. A damaged cache entry is
rebuilt, and :func:`notice` says so on stderr. Images too large to read whole
(an imported mini- or tieredImageNet) are saved apart as a plain ``.npy`` and
opened memory-mapped (:func:`mapped_images`): an ``.npz`` member cannot be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import struct
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from fewshot.core.errors import FewshotError
from fewshot.core.locks import cache_lock
from fewshot.core.paths import cache_dir

ROLES = ("train", "val", "test")
# What Pillow raises on a damaged or foreign image, by format: each becomes one line naming the file.
IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    ZeroDivisionError,
    MemoryError,
)


class DamagedFile(ValueError):
    """A file the suite wrote (a cache entry, a checkpoint) that fails its checks: the message says how."""


@dataclass(frozen=True)
class ClassInfo:
    """What is known of one class: its name, its group (alphabet, script) and dataset-specific facts."""

    name: str
    group: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassImages:
    """All images of a dataset, decoded: uint8 ``images [n, C, H, W]`` sorted by ``labels [n]``.

    A dataset of precomputed features (Xian et al.'s ResNet-101 features) holds
    float32 ``images [n, D]`` instead; its learners skip the image backbone.

    ``domains [n]`` indexes ``domain_names`` (font family, digit source) where a
    dataset has domains. ``extras`` holds integer tables a protocol needs, such
    as the image indices of fixed evaluation episodes.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[ClassInfo, ...]
    domains: torch.Tensor | None = None
    domain_names: tuple[str, ...] = ()
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    key: str = ""  # identity of the decoded arrays (the decode cache's key), for caches built on them
    # Channel means and standard deviations (of pixels in [0, 1]) that images are normalised by when sampled; None:
    # not normalised. Imports of natural images carry their training split's.
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        pixels = self.images.dtype == torch.uint8 and self.images.dim() == 4
        if not pixels and not self.is_features:
            raise ValueError(
                f"images must be uint8 [n, C, H, W] or float32 features [n, D], "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("one label per image is required")
        if self.labels.numel() and bool((self.labels[1:] < self.labels[:-1]).any()):
            raise ValueError("images must be sorted by label")

    @property
    def is_features(self) -> bool:
        return self.images.dtype == torch.float32 and self.images.dim() == 2

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=len(self.classes))

    def save(self, path: Path, mapped: bool = False, images_file: Path | None = None) -> None:
        """Write the arrays and metadata to one ``.npz`` atomically (no pickle inside). ``mapped`` writes the
        images apart, first, to a plain ``.npy`` beside it (:func:`mapped_images_path`), which :meth:`load`
        opens memory-mapped: an ``.npz`` member cannot be, and a large dataset is never read whole. Where the
        images already are such a file (``images_file``, in the same folder), it is moved there, not copied."""
        meta = {
            "classes": [{"name": c.name, "group": c.group, "meta": dict(c.meta)} for c in self.classes],
            "domain_names": list(self.domain_names),
            "extras": sorted(self.extras),
            "mapped_images": mapped,
        }
        # Any: numpy's stubs would match a **dict of arrays against savez's allow_pickle flag.
        arrays: dict[str, Any] = {
            "labels": self.labels.numpy(),
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        }
        if mapped and images_file is not None:
            os.replace(images_file, mapped_images_path(path))
        elif mapped:
            atomic_write(mapped_images_path(path), lambda f: np.lib.format.write_array(f, self.images.numpy()))
        else:
            arrays["images"] = self.images.numpy()
        if self.domains is not None:
            arrays["domains"] = self.domains.numpy()
        arrays.update({f"extra_{k}": v.numpy() for k, v in self.extras.items()})
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: Path) -> ClassImages:
        """The arrays :meth:`save` wrote, each array's declared size checked before it is read and its CRC-32
        as it is read; anything wrong with the file (missing, damaged, foreign) raises :class:`DamagedFile`."""
        verify_zip(path, crc=False)
        try:
            with zipfile.ZipFile(path) as archive:
                npy_headers(archive)
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                images = mapped_images(mapped_images_path(path)) if meta.get("mapped_images") else z["images"]
                return cls(
                    images=torch.from_numpy(images),
                    labels=torch.from_numpy(z["labels"]),
                    classes=tuple(ClassInfo(c["name"], c["group"], c["meta"]) for c in meta["classes"]),
                    domains=torch.from_numpy(z["domains"]) if "domains" in z.files else None,
                    domain_names=tuple(meta["domain_names"]),
                    extras={k: torch.from_numpy(z[f"extra_{k}"]) for k in meta["extras"]},
                )
        except DamagedFile:
            raise
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            EOFError,
            MemoryError,
            zipfile.BadZipFile,
        ) as err:
            raise DamagedFile(f"unreadable arrays ({type(err).__name__}: {first_line(err)})") from None


def mapped_images_path(path: Path) -> Path:
    """Where :meth:`ClassImages.save` puts the images of ``path`` (an ``.npz``) when they are memory-mapped."""
    return Path(path).with_name(Path(path).name.removesuffix(".npz") + ".images.npy")


def mapped_images(path: Path) -> np.ndarray:
    """The images of a plain ``.npy``, memory-mapped copy-on-write (pages are read as episodes gather them;
    nothing is written back). A whole file's CRC would mean reading it all at every open, so what is checked
    is what can be without reading the pixels: the header declares uint8 ``[n, C, H, W]`` and the file holds
    exactly the bytes it declares (a truncated or padded file is refused, not read past its end)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except FileNotFoundError:
        raise DamagedFile(f"the images file {Path(path).name} is missing") from None
    if dtype != np.uint8 or len(shape) != 4 or fortran:
        raise DamagedFile(f"{Path(path).name} declares {dtype} {list(shape)}, not uint8 [n, C, H, W]")
    size, declared = os.path.getsize(path), offset + int(np.prod(shape, dtype=object))
    if size != declared:
        raise DamagedFile(f"{Path(path).name} holds {size:,} bytes where its header declares {declared:,}")
    return np.load(path, mmap_mode="c", allow_pickle=False)


class ImagesFile:
    """A plain ``.npy`` of uint8 ``[n, C, H, W]`` images written block by block, its header (which holds ``n``)
    rewritten last, so that an import holds one block in memory rather than every image. It is a temporary
    file in ``folder`` until :meth:`opened` maps it; :meth:`close` (or leaving the ``with``) removes it."""

    def __init__(self, folder: Path, tail: tuple[int, int, int]):
        self.folder, self.tail, self.count = Path(folder), tuple(tail), 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, prefix=".images.", suffix=".npy.tmp")
        except OSError as err:
            raise self._unwritable(err) from None
        self.path, self.file = Path(name), os.fdopen(fd, "w+b")
        self.offset = self._header()

    def _unwritable(self, err: OSError) -> FewshotError:
        return FewshotError(f"cannot write images into {self.folder}: {err}; set FEWSHOT_CACHE to a writable folder")

    def _header(self) -> int:
        self.file.seek(0)
        header = {"descr": "|u1", "fortran_order": False, "shape": (self.count, *self.tail)}
        np.lib.format.write_array_header_1_0(self.file, header)
        return self.file.tell()

    def append(self, block: np.ndarray) -> None:
        if block.dtype != np.uint8 or tuple(block.shape[1:]) != self.tail:
            raise ValueError(f"a block of {block.dtype} {list(block.shape)} in images of [n, {self.tail}]")
        try:
            self.file.seek(0, os.SEEK_END)
            self.file.write(np.ascontiguousarray(block).data)
        except OSError as err:  # a full disk
            raise self._unwritable(err) from None
        self.count += len(block)

    def reserve(self, n: int) -> int:
        """Room for ``n`` more images, filled by :meth:`put` in any order; returns the first one's row."""
        first, self.count = self.count, self.count + n
        try:
            self.file.truncate(self.offset + self.count * int(np.prod(self.tail)))
        except OSError as err:
            raise self._unwritable(err) from None
        return first

    def put(self, row: int, block: np.ndarray) -> None:
        """Write images ``[k, C, H, W]`` at rows ``row`` to ``row + k - 1``, rows :meth:`reserve` made room for."""
        if block.dtype != np.uint8 or tuple(block.shape[1:]) != self.tail or not 0 <= row <= self.count - len(block):
            raise ValueError(f"a block of {block.dtype} {list(block.shape)} at row {row} of {self.count}")
        try:
            self.file.seek(self.offset + row * int(np.prod(self.tail)))
            self.file.write(np.ascontiguousarray(block).data)
        except OSError as err:
            raise self._unwritable(err) from None

    def opened(self) -> np.ndarray:
        """The images written, memory-mapped (see :func:`mapped_images`)."""
        if self._header() != self.offset:  # padded to 64 bytes, the header only grows past ~10^40 images
            raise ValueError("the images' header outgrew its place")
        self.file.close()
        return mapped_images(self.path)

    def close(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ImagesFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Split:
    """The classes one role may use, each with a number of quarter turns.

    Rotations by 90 degrees as extra classes (Vinyals et al.) are rows of the
    same class with another ``rotations`` value, never copies of the images.
    ``image_mask`` optionally restricts which images of those classes the role sees.
    """

    classes: torch.Tensor
    rotations: torch.Tensor
    image_mask: torch.Tensor | None = None

    @classmethod
    def of(cls, classes, rotations=None, image_mask=None) -> Split:
        classes = torch.as_tensor(classes, dtype=torch.int64)
        rotations = torch.zeros_like(classes) if rotations is None else torch.as_tensor(rotations, dtype=torch.int64)
        if classes.shape != rotations.shape:
            raise ValueError("one rotation per class row is required")
        return cls(classes, rotations, image_mask)

    def __len__(self) -> int:
        return int(self.classes.numel())

    def with_rotations(self) -> Split:
        """Every class in all four quarter turns, each turn a class of its own."""
        return Split.of(self.classes.repeat_interleave(4), torch.arange(4).repeat(len(self)), self.image_mask)

    def restricted(self, mask: torch.Tensor) -> Split:
        """The same classes, with only the images of ``mask`` (and of any mask the split already has)."""
        return Split(self.classes, self.rotations, mask if self.image_mask is None else self.image_mask & mask)

    def union(self, other: Split) -> Split:
        if (self.image_mask is None) != (other.image_mask is None):
            raise ValueError("cannot join a split restricted to some images with one that is not")
        mask = None if self.image_mask is None or other.image_mask is None else self.image_mask | other.image_mask
        return Split.of(torch.cat([self.classes, other.classes]), torch.cat([self.rotations, other.rotations]), mask)


@dataclass(frozen=True)
class FixedEpisodes:
    """Episodes fixed by a benchmark's authors rather than sampled (Lake's twenty runs).

    Item ids are ``image_index * 4 + quarter_turns``, as everywhere in the sampler.
    """

    class_ids: torch.Tensor  # [E, N]
    support_items: torch.Tensor  # [E, N*K], grouped by class
    query_items: torch.Tensor  # [E, N*Q], grouped by class

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])


@dataclass(frozen=True)
class Benchmark:
    """A dataset under one protocol: its images, the split of each role, and any fixed episodes.

    ``fixed_cell`` pins ways/shots/queries/episodes where the protocol defines
    them (Lake's runs are 20-way 1-shot with one query per class, 20 episodes).
    ``report`` is ``"accuracy"`` or ``"error"`` (the figure the protocol's papers quote).
    ``describe(side)`` gives every class's description ``[classes, D]`` for the
    sides named in ``sides`` (zero-shot learning). A ``zero_shot`` protocol's test
    classes are known by their descriptions alone (``--shots 0``). ``selection_train`` names the split a learner is
    fitted on while its hyperparameters are chosen on ``val`` (Xian et al.'s
    ``train_loc``; Snell et al.'s ``train.txt``), where that differs from ``train``.
    """

    dataset: str
    protocol: str
    data: ClassImages
    splits: Mapping[str, Split]
    fixed: Mapping[str, FixedEpisodes] = field(default_factory=dict)
    fixed_cell: Mapping[str, int] = field(default_factory=dict)
    report: str = "accuracy"
    notes: str = ""
    sides: tuple[str, ...] = ()
    describe: Callable[[str], torch.Tensor] | None = None
    zero_shot: bool = False
    selection_train: str = "train"
    network: str = "conv4"  # the backbone the protocol's papers use, for learners that take it from the benchmark
    # Domain adaptation: the source and target domains, and the split "target" of unlabelled target
    # training images (and "target_labelled" of the few labelled ones of --target-labels, if any).
    source: str = ""
    target: str = ""
    # The evaluation protocol (a registered ``fewshot.protocols`` name) that scores the benchmark whatever the
    # command line's cell words say ("gzsl": seen and unseen classes at once; "images": every test image among
    # the training classes); "" lets the words choose (ways and shots: episodes; --ways all: every class).
    evaluation: str = ""
    default_queries: int = 15  # fewer where a domain holds few images of a class (glyph font families)
    # The per-channel mean (in [0, 1]) of the training images, where the protocol's papers subtract it from the
    # network's input (Ganin et al.'s digit shifts: ``TaskSpec.pixel_mean``); () where they do not.
    pixel_mean: tuple[float, ...] = ()
    # The model-selection regime this benchmark is a view for (``fewshot.core.selection``): its ``test`` split is
    # then validation data, and no split holds a test image or class; "" for the benchmark itself.
    selection: str = ""

    def split(self, role: str) -> Split | None:
        return self.splits.get(role)

    def required_split(self, role: str) -> Split:
        """The split of ``role``, or an error naming the splits the benchmark has."""
        split = self.splits.get(role)
        if split is None:
            raise FewshotError(
                f"{self.dataset}/{self.protocol} has no {role} split (it has: {', '.join(self.splits) or 'none'})"
            )
        return split


def shifted_splits(splits: Mapping[str, Split], domains: torch.Tensor, source: int, target: int) -> dict[str, Split]:
    """Few-shot splits across a domain shift: training and validation classes in the source domain, test
    classes in the target domain, and ``target``: the training classes' target-domain images (used unlabelled)."""
    in_source, in_target = domains == source, domains == target
    shifted = {role: split.restricted(in_target if role == "test" else in_source) for role, split in splits.items()}
    shifted["target"] = splits["train"].restricted(in_target)
    return shifted


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def first_line(err: BaseException | str, limit: int = 200) -> str:
    """An exception's message (or a text) as one line of at most ``limit`` characters, cut at a word with "..."."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def notice(line: str) -> None:
    """One line on stderr about something the suite repaired on its own (a damaged cache entry rebuilt)."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def verify_zip(path: Path, crc: bool = True) -> None:
    """Check that ``path`` is a zip archive of stored (uncompressed) members whose bytes all match their
    CRC-32s, as ``torch.save`` and ``np.savez`` write them; raises :class:`DamagedFile` otherwise. Reading
    stored members bounds the work by the file's size (no decompression bomb). ``crc=False`` leaves the CRC-32s
    to a reader that checks them itself (``np.load`` does, for each member it reads to the end)."""
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
            if packed:
                raise DamagedFile(f"member {packed[0]} is compressed, which the suite never writes")
            bad = archive.testzip() if crc else None
    except DamagedFile:
        raise
    except FileNotFoundError:
        raise DamagedFile("the file is missing") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as err:
        raise DamagedFile(f"not a whole zip archive ({first_line(err)})") from None
    if bad is not None:
        raise DamagedFile(f"member {bad} fails its CRC-32 check")


def npy_headers(archive: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype every ``.npy`` member of an ``.npz`` declares, read from the headers alone; a
    declared size larger than the member (which would allocate it before failing) raises ``ValueError``."""
    declared = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(f"{info.filename} declares {shape} {dtype} ({nbytes:,} bytes) in {info.file_size:,}")
        declared[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
    return declared


@contextmanager
def opened_image(raw: bytes, where: str, max_pixels: int) -> Iterator[Any]:
    """The image in ``raw`` (a ``PIL.Image``), its header read and its declared size checked before any pixel
    is decoded: no pixels, or more than ``max_pixels`` (a small file can declare a huge image, a decompression
    bomb), is refused in one line naming ``where``, as is any failure to decode inside the block."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own check, at open, for formats that decode there
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if width * height > max_pixels or width * height == 0:
                    raise FewshotError(
                        f"{where} declares a {width}x{height} image: refused before decoding "
                        f"({'no pixels' if width * height == 0 else f'over {max_pixels:,} pixels'})"
                    )
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise FewshotError(f"{where} is refused as a possible decompression bomb: {first_line(err)}") from None
    except Image.UnidentifiedImageError:  # its message names the BytesIO object, not the file
        raise FewshotError(f"{where} is not a readable image (no image format Pillow reads recognises it)") from None
    except IMAGE_ERRORS as err:
        raise FewshotError(f"{where} is not a readable image ({type(err).__name__}: {first_line(err)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(name: str, version: int, size: int, build: Callable[[], ClassImages], **depends_on: Any) -> ClassImages:
    """Load ``name`` from the decode cache, building and storing it first if absent or damaged (saying so).
    Only a whole build is stored, under a temporary name renamed last: a failing build leaves no entry."""
    key = cache_key(name=name, version=version, size=size, **depends_on)
    path = cache_dir() / "datasets" / f"{name}-v{version}-{size}px-{key}.npz"
    if path.exists():
        try:
            return dataclasses.replace(ClassImages.load(path), key=key)
        except DamagedFile as err:
            notice(f"the dataset cache entry {path} is damaged ({err}): decoding {name} again")
    with cache_lock(path):  # sweep workers needing the entry at once: one decodes, the others then load it
        if path.exists():
            try:
                return dataclasses.replace(ClassImages.load(path), key=key)
            except DamagedFile:
                pass  # found damaged above, before the wait: decode it here
        data = build()
        try:
            data.save(path)
        except OSError as err:
            raise FewshotError(
                f"cannot write the dataset cache {path}: {err}; set FEWSHOT_CACHE to a writable folder"
            ) from err
        return dataclasses.replace(data, key=key)


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class HashedReader:
    """A binary file read through, its bytes added to an md5 as they are read: a large source file is hashed
    by the one pass that reads it."""

    def __init__(self, file: BinaryIO):
        self.file, self.md5 = file, hashlib.md5()

    def read(self, size: int = -1) -> bytes:
        block = self.file.read(size)
        self.md5.update(block)
        return block

    def readline(self) -> bytes:
        line = self.file.readline()
        self.md5.update(line)
        return line

    def rest(self) -> str:
        """The md5 of the whole file, reading whatever has not been read yet."""
        while self.read(1 << 20):
            pass
        return self.md5.hexdigest()


def resize_strokes(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Antialiased resize of ``[n, H, W]`` stroke intensities in [0, 1] to uint8 ``[n, 1, size, size]``."""
    out = torch.empty(images.shape[0], 1, size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].unsqueeze(1).float()
        small = torch.nn.functional.interpolate(
            block, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + chunk] = (small.clamp(0, 1) * 255).round().to(torch.uint8)
    return out
