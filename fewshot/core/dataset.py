"""The dataset interface every dataset implements, built-in, plug-in or imported.

A dataset is a class registered under the ``fewshot.datasets`` entry-point
group. Every attribute and method below has a default, so a dataset declares
only what it has: a dataset of one protocol and no domains, downloads or class
descriptions is a name, a summary, a citation, its protocol and ``benchmark``.
The engine reads every dataset through this interface and nothing else.

``fewshot data import FORMAT PATH --name NAME`` runs the :class:`Importer`
registered as FORMAT (entry-point group ``fewshot.importers``). Datasets it
imports live in the cache: their decoded arrays and, written last, a JSON
record ``imports/NAME.json`` naming the format. The registry finds ``--dataset
NAME`` there when no registered dataset has that name, and asks that format's
importer for it (``Importer.dataset``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fewshot.core.data import Benchmark, ClassImages, atomic_write, mapped_images_path
from fewshot.core.errors import FewshotError
from fewshot.core.paths import cache_dir

IMPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Imported images larger than this are stored in a file of their own and opened memory-mapped, never read
# whole (tieredImageNet's 779,165 images are 16 GB at 84x84x3); smaller ones stay in the .npz, CRC-checked.
MAPPED_ABOVE = 256 << 20


@dataclass(frozen=True)
class DownloadFile:
    """One file of a dataset's official release: where it goes under the dataset's folder, its URL and md5."""

    path: str
    url: str
    md5: str


class Dataset:
    """A benchmark's data and the protocols it is evaluated under; the defaults describe a dataset with none of
    the optional parts (domains, class descriptions, downloads, variants)."""

    # Class attributes; an imported dataset sets these five on its instance, from its import record.
    name: str = ""
    summary: str = ""
    citation: str = ""  # the paper or release the data comes from, one line
    protocols: tuple[str, ...] = ()
    default_protocol: str = ""
    # Domains a shift may name with --source and --target, and the shift taken when neither is given.
    domains: ClassVar[tuple[str, ...]] = ()
    default_shift: ClassVar[tuple[str, str] | None] = None
    # Class descriptions for zero-shot learning: side name -> what it is.
    descriptions: ClassVar[Mapping[str, str]] = {}
    # The files `fewshot data fetch NAME` downloads into the data root's NAME/ folder; empty: not downloadable.
    manifest: ClassVar[tuple[DownloadFile, ...]] = ()
    # Whether `--dataset NAME:VARIANT` names one of the dataset's imports (xlsa17:AWA2); built as cls(VARIANT).
    variants: ClassVar[bool] = False
    # Whether this is the dataset a command uses when --dataset is left out: one that needs no files, so that
    # the quick start runs offline on a fresh machine. At most one registered dataset may say so.
    default: ClassVar[bool] = False

    def status(self, root: Path) -> tuple[bool, str]:
        """Whether the dataset's files are present under the data root ``root``, and a line saying where."""
        folder = Path(root) / self.name
        missing = [f.path for f in self.manifest if not (folder / f.path).is_file()]
        if missing:
            return False, f"missing {', '.join(missing)} under {folder}: run `fewshot data fetch {self.name}`"
        if self.manifest:
            return True, f"in {folder}"
        return True, "reads no files of its own"

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        """The data under ``protocol`` (one of ``protocols``), read from the data root ``root``. ``size`` is the
        image side for datasets decoded at any size; ``source``/``target`` name the domains of a shift."""
        raise FewshotError(f"dataset {self.name!r} does not implement benchmark()")


class Importer:
    """A format ``fewshot data import FORMAT PATH --name NAME`` reads, registered under ``fewshot.importers``.

    It reads ``PATH`` in place, checks it, and stores it in the cache; a dataset it imports under a name of its
    own (not a ``NAME:VARIANT`` of a registered dataset) is recorded in ``imports/NAME.json``, and ``dataset``
    builds it from that record."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # The command line's format options it reads (of --csv, --size, --channels, --force); others are refused.
    options: ClassVar[tuple[str, ...]] = ()
    # The NAME an import takes when --name is left out (mini-imagenet's is its format's name); "": required.
    default_name: ClassVar[str] = ""

    def import_files(self, name: str, path: Path | None, options: Mapping[str, Any]) -> str:
        """Import ``path`` as ``name`` with the ``options`` given; returns one line saying what was imported."""
        raise FewshotError(f"the {self.name} importer does not implement import_files()")

    def dataset(self, name: str, record: Mapping[str, Any]) -> Dataset:
        """The dataset imported as ``name``, from its import record."""
        raise FewshotError(f"the {self.name} importer records no datasets of their own name: --dataset {name} is none")


def imports_dir() -> Path:
    return cache_dir() / "imports"


def import_record(name: str) -> dict[str, Any] | None:
    """The record of the dataset imported as ``name``, or None if there is none."""
    if not IMPORT_NAME.fullmatch(name):
        return None
    path = imports_dir() / f"{name}.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise FewshotError(f"{path} is damaged ({err}): import {name} again with --force") from None
    if not isinstance(record, dict) or record.get("name") != name or not isinstance(record.get("format"), str):
        raise FewshotError(f"{path} is not an import record of {name}: import it again with --force")
    return record


def imported_names() -> list[str]:
    return sorted(p.stem for p in imports_dir().glob("*.json") if IMPORT_NAME.fullmatch(p.stem))


def replaced_import(name: str, force: bool) -> dict[str, Any] | None:
    """The record an import of ``name`` would replace (None if none); refused unless ``force``. An importer
    calls it before reading anything, so a name in use is refused at once."""
    try:
        previous = import_record(name)
    except FewshotError:
        if not force:
            raise
        return None  # a damaged record is simply overwritten
    if previous is not None and not force:
        raise FewshotError(
            f"{name} is already imported (from {previous.get('source', '?')}): "
            f"pass --force to replace it, or choose another --name"
        )
    return previous


def save_import(record: Mapping[str, Any], data: ClassImages, force: bool, images_file: Path | None = None) -> Path:
    """Store an import: its arrays, then its record, both atomically, so that a failure at any point leaves the
    previous import (or none) in place. The arrays' file is named after ``data.key``, so a replaced import's
    arrays are only removed once the new record points elsewhere. Images over ``MAPPED_ABOVE`` bytes go to a
    file of their own, opened memory-mapped; ``images_file`` (an :class:`ImagesFile`'s, holding ``data.images``)
    becomes that file without a copy. Returns the arrays' path."""
    name = record["name"]
    folder = imports_dir()
    previous = replaced_import(name, force)
    arrays = folder / f"{name}-{data.key}.npz"
    stats = channel_statistics(data, record, images_file)
    text = json.dumps({**record, "key": data.key, "arrays": arrays.name, **stats}, indent=1)
    replaces_arrays = previous is not None and previous.get("arrays") == arrays.name
    try:
        data.save(arrays, data.images.numel() * data.images.element_size() > MAPPED_ABOVE, images_file)
        atomic_write(folder / f"{name}.json", lambda f: f.write(text.encode()))
    except BaseException as err:
        if not replaces_arrays:  # arrays no record points to would be left behind
            arrays.unlink(missing_ok=True)
            mapped_images_path(arrays).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise FewshotError(
                f"cannot write the import into {folder}: {err}; set FEWSHOT_CACHE to a writable folder"
            ) from None
        raise
    if previous is not None and not replaces_arrays and previous.get("arrays"):
        (folder / os.path.basename(str(previous["arrays"]))).unlink(missing_ok=True)
        mapped_images_path(folder / os.path.basename(str(previous["arrays"]))).unlink(missing_ok=True)
    return arrays


def channel_statistics(
    data: ClassImages, record: Mapping[str, Any], images_file: Path | None = None, chunk: int = 512
) -> dict[str, Any]:
    """For RGB images with a split, the channel means and standard deviations of the first protocol's training
    images (in [0, 1]), which episodes are normalised by (``{"normalisation": {...}}``); else nothing. The images
    are read ``chunk`` at a time, from ``images_file`` by plain reads where the import streamed its images to one
    (so that a memory-mapped import's pages are never mapped into this process: tieredImageNet's 16 GB would
    count against its memory)."""
    splits = record.get("splits") or {}
    if data.is_features or data.images.shape[1] != 3 or not splits:
        return {}
    protocol = next(iter(splits))
    row_of = {info.name: row for row, info in enumerate(data.classes)}
    rows = torch.tensor([row_of[c] for c in splits[protocol].get("train", []) if c in row_of])
    if not len(rows):
        return {}
    chosen = torch.isin(data.labels, rows).nonzero().flatten().numpy()
    # exact integer sums of pixel values and their squares (a chunk's int64 copy: 87 MB at 84 px)
    sums, squares, count = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), 0
    for block in _image_blocks(data, images_file, chosen, chunk):
        wide = block.astype(np.int64)
        sums += wide.sum((0, 2, 3))
        squares += (wide * wide).sum((0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = sums / count / 255.0
    std = np.sqrt(np.maximum(squares / count / 255.0**2 - mean**2, 1e-12))
    over = f"the {len(rows)} training classes of protocol {protocol}"
    return {"normalisation": {"mean": [round(m, 6) for m in mean], "std": [round(v, 6) for v in std], "over": over}}


def _image_blocks(data: ClassImages, images_file: Path | None, chosen: np.ndarray, chunk: int):
    """The images at the sorted indices ``chosen``, ``chunk`` at a time."""
    if images_file is None:
        images = data.images.numpy()
        for start in range(0, len(chosen), chunk):
            yield images[chosen[start : start + chunk]]
        return
    tail = tuple(data.images.shape[1:])
    row_bytes = int(np.prod(tail))
    with open(images_file, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        read_header(f)
        offset = f.tell()
        # runs of consecutive rows (a class's images are), each read in pieces of at most ``chunk`` rows
        breaks = np.flatnonzero(np.diff(chosen) != 1) + 1
        for run in np.split(chosen, breaks):
            for start in range(0, len(run), chunk):
                first, n = int(run[start]), min(chunk, len(run) - start)
                raw = os.pread(f.fileno(), n * row_bytes, offset + first * row_bytes)
                yield np.frombuffer(raw, dtype=np.uint8).reshape(n, *tail)


def load_import(record: Mapping[str, Any]) -> ClassImages:
    """The decoded arrays of an import, keyed by the import's key for the caches built on them, with the channel
    statistics its record holds."""
    path = imports_dir() / os.path.basename(str(record.get("arrays", "")))
    try:
        data = ClassImages.load(path)
    except (OSError, ValueError, KeyError) as err:
        raise FewshotError(
            f"the arrays of {record['name']} ({path}) are missing or damaged ({err}): import it again with --force"
        ) from None
    stats = record.get("normalisation")
    normalisation = (tuple(stats["mean"]), tuple(stats["std"])) if isinstance(stats, dict) else None
    return dataclasses.replace(data, key=str(record.get("key", "")), normalisation=normalisation)
