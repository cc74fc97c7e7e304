"""Omniglot (Lake, Salakhutdinov and Tenenbaum 2015, "Human-level concept learning
through probabilistic program induction", Science 350(6266)).

1,623 handwritten characters from 50 alphabets, each drawn once by 20 people.
Read in place from the data root's ``omniglot/`` folder in either layout:

* the arrays: ``images_background.npz``, ``images_evaluation.npz`` and
  ``omniglot_characters.csv`` (see ``../shared/data/README.md``), or
* the official release as ``fewshot data fetch omniglot`` leaves it:
  ``images_background.zip`` and ``images_evaluation.zip``.

Both give the same arrays. Images are 105x105 binary; they are resized to
28x28 (antialiased, strokes as 1), as Vinyals et al. and Snell et al. did.

Protocols:

* ``vinyals`` (default): Vinyals et al. 2016's split as published with Snell et
  al. 2017's code: 1,200 training characters (their ``trainval.txt``) and 423
  test characters, each in four rotations that count as separate classes. The
  172 characters of ``val.txt`` serve as validation episodes; under this
  protocol they are among the training characters (the papers train on all
  1,200), so validation accuracy monitors training rather than estimating test
  accuracy. Choices are made with ``--select val-classes``: trained on the
  1,028 characters of ``train.txt`` alone, scored on ``val.txt``.
* ``lake``: Lake et al.'s background (964 characters, 30 alphabets) / evaluation
  (659 characters, 20 alphabets) split, no rotations, no validation split.
* ``lake-runs``: train on the background set; test on Lake et al.'s twenty
  20-way within-alphabet one-shot runs from ``all_runs.zip`` (one query per
  class, 20 episodes). Their published error rates: people 4.5%, Bayesian
  program learning 3.3%, Koch et al.'s Siamese net 8.0%, Lake's ConvNet 13.5%.
"""

from __future__ import annotations

import csv
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from fewshot.core.data import (
    Benchmark,
    ClassImages,
    ClassInfo,
    FixedEpisodes,
    Split,
    cached,
    file_digest,
    first_line,
    npy_headers,
    opened_image,
    resize_strokes,
)
from fewshot.core.dataset import Dataset, DownloadFile
from fewshot.core.errors import FewshotError

VERSION = 1
SETS = ("background", "evaluation")
ARRAY_FILES = ("images_background.npz", "images_evaluation.npz", "omniglot_characters.csv")
ZIP_FILES = ("images_background.zip", "images_evaluation.zip")
SPLIT_FILES = ("train.txt", "val.txt", "test.txt", "trainval.txt")
RUNS_FILE = "all_runs.zip"
ROTATIONS = ("rot000", "rot090", "rot180", "rot270")
FETCH_HINT = "run `fewshot data fetch omniglot` or set FEWSHOT_DATA to a folder that holds omniglot/"
RELEASE = "https://github.com/brendenlake/omniglot/raw/master/python/"
SNELL_SPLITS = "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals/"


class Omniglot(Dataset):
    name = "omniglot"
    summary = "1,623 handwritten characters, 50 alphabets, 20 drawers (Lake et al. 2015)"
    citation = (
        "Lake, Salakhutdinov and Tenenbaum 2015, Human-level concept learning through probabilistic "
        "program induction, Science 350(6266)"
    )
    protocols = ("vinyals", "lake", "lake-runs")
    default_protocol = "vinyals"
    domains = ("omniglot", "mnist")
    # Lake et al.'s official release, and Snell et al.'s copy of Vinyals et al.'s split, with their md5s.
    manifest = (
        DownloadFile("images_background.zip", RELEASE + "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
        DownloadFile("images_evaluation.zip", RELEASE + "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
        DownloadFile(
            "images_background_small1.zip", RELEASE + "images_background_small1.zip", "e704a628b5459e08445c13499850abc4"
        ),
        DownloadFile(
            "images_background_small2.zip", RELEASE + "images_background_small2.zip", "b75a71a51d3b13f821f212756fe481fd"
        ),
        DownloadFile(
            "all_runs.zip", RELEASE + "one-shot-classification/all_runs.zip", "e8996daecdf12afeeb4a53a179f06b19"
        ),
        DownloadFile("vinyals/train.txt", SNELL_SPLITS + "train.txt", "433d1fcc2b20dcee2983ceb524586f7f"),
        DownloadFile("vinyals/val.txt", SNELL_SPLITS + "val.txt", "78c535fa427b12b6596908376a0b3f34"),
        DownloadFile("vinyals/test.txt", SNELL_SPLITS + "test.txt", "43534e6d5f9e74acbb7de1b4874abad8"),
        DownloadFile("vinyals/trainval.txt", SNELL_SPLITS + "trainval.txt", "888433268015439fd05fb6e9006ead50"),
    )

    def status(self, root: Path) -> tuple[bool, str]:
        folder = Path(root) / "omniglot"
        layout = _layout(folder)
        if layout is None:
            return False, f"missing under {folder}: {FETCH_HINT}"
        extras = [
            n
            for n, p in (("vinyals", folder / "vinyals" / "trainval.txt"), ("lake-runs", folder / RUNS_FILE))
            if not p.exists()
        ]
        return True, f"{layout} in {folder}" + (f" (missing the files of: {', '.join(extras)})" if extras else "")

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        if source is not None or target is not None or target_labels:
            return self.to_digits(protocol, root, size, source, target, target_labels)
        folder = Path(root) / "omniglot"
        data = load(folder, size)
        table = {(c.group, c.meta["character"]): i for i, c in enumerate(data.classes)}
        in_set = torch.tensor([c.meta["set"] == "background" for c in data.classes])
        background = Split.of(torch.nonzero(in_set).squeeze(1))
        evaluation = Split.of(torch.nonzero(~in_set).squeeze(1))
        if protocol == "vinyals":
            # Training uses trainval.txt, which holds the validation characters; choices are made by training on
            # train.txt alone and scoring val.txt (``--select val-classes``), as Snell et al. did.
            splits = {
                role: _vinyals_split(folder, file, table)
                for role, file in (
                    ("train", "trainval.txt"),
                    ("select", "train.txt"),
                    ("val", "val.txt"),
                    ("test", "test.txt"),
                )
            }
            return Benchmark(
                self.name,
                protocol,
                data,
                splits,
                notes="Vinyals et al. split, rotations as classes",
                selection_train="select",
            )
        if protocol == "lake":
            return Benchmark(
                self.name,
                protocol,
                data,
                {"train": background, "test": evaluation},
                notes="Lake et al. background/evaluation split",
            )
        if protocol == "lake-runs":
            if "runs_support" not in data.extras:
                raise FewshotError(f"no {RUNS_FILE} in {folder}: the lake-runs protocol needs it; {FETCH_HINT}")
            runs = FixedEpisodes(
                data.extras["runs_classes"], data.extras["runs_support"] * 4, data.extras["runs_query"] * 4
            )
            return Benchmark(
                self.name,
                protocol,
                data,
                {"train": background},
                fixed={"test": runs},
                fixed_cell={"ways": 20, "shots": 1, "queries": 1, "episodes": 20},
                report="error",
                notes="Lake et al.'s 20 within-alphabet runs",
            )
        raise FewshotError(f"unknown omniglot protocol {protocol!r}: choose one of {', '.join(self.protocols)}")

    def to_digits(
        self, protocol: str, root: Path, size: int, source: str | None, target: str | None, target_labels: int
    ) -> Benchmark:
        """Omniglot as the source of few-shot episodes on MNIST digits: training and validation episodes from
        Omniglot's split, test episodes from the ten digits' test images, MNIST's training digits unlabelled."""
        if (source or "omniglot", target) != ("omniglot", "mnist"):
            raise FewshotError(f"omniglot's shift is --source omniglot --target mnist, not {source} -> {target}")
        if protocol not in ("vinyals", "lake"):
            raise FewshotError(f"the omniglot -> mnist shift trains on the vinyals or lake protocol, not {protocol}")
        if target_labels:
            raise FewshotError("--target-labels applies to the digits' uda protocol; few-shot shifts use none")
        from fewshot.tasks.digits import load_domain

        base = self.benchmark(protocol, root, size)
        digits = load_domain(Path(root), "mnist")
        offset = len(base.data.classes)
        data = ClassImages(
            torch.cat([base.data.images, digits.images]),
            torch.cat([base.data.labels, digits.labels + offset]),
            base.data.classes + tuple(ClassInfo(c.name, "MNIST", {"digit": int(c.name)}) for c in digits.classes),
            domains=torch.cat([torch.zeros_like(base.data.labels), torch.ones_like(digits.labels)]),
            domain_names=self.domains,
            key=f"{base.data.key}+{digits.key}",
        )
        in_mnist = torch.zeros(len(data.labels), dtype=torch.bool)
        test_rows = torch.zeros_like(in_mnist)
        test_rows[digits.extras["test"] + len(base.data.labels)] = True
        in_mnist[len(base.data.labels) :] = True
        mnist = Split.of(torch.arange(offset, offset + 10))
        splits = {
            **{role: base.splits[role] for role in ("train", "val") if role in base.splits},
            "test": mnist.restricted(test_rows),
            "target": mnist.restricted(in_mnist & ~test_rows),
        }
        return Benchmark(
            self.name,
            protocol,
            data,
            splits,
            source="omniglot",
            target="mnist",
            notes=f"{base.notes}; test episodes of MNIST digits (10 classes, 2,000 test images)",
        )


def _layout(folder: Path) -> str | None:
    if all((folder / f).exists() for f in ARRAY_FILES):
        return "arrays"
    if all((folder / f).exists() for f in ZIP_FILES):
        return "official zips"
    return None


def load(folder: Path, size: int = 28) -> ClassImages:
    """Every Omniglot image, ordered by official character id and drawer, decoded once and cached."""
    layout = _layout(folder)
    if layout is None:
        raise FewshotError(f"no Omniglot under {folder}: {FETCH_HINT}")
    names = ARRAY_FILES if layout == "arrays" else ZIP_FILES
    runs = folder / RUNS_FILE
    sources = [folder / n for n in names] + ([runs] if runs.exists() else [])
    digests = {p.name: _guarded(p, file_digest, p) for p in sources}
    return cached(
        "omniglot", VERSION, size, lambda: _decode(folder, layout, runs if runs.exists() else None, size), files=digests
    )


def _guarded(path: Path, fn, *args):
    """Run a reader on a raw file, turning a damaged file into one line that says how to fix it."""
    try:
        return fn(*args)
    except FewshotError:
        raise
    # zipfile raises NotImplementedError on a damaged compression method, RuntimeError on a member marked encrypted;
    # zlib.error on damaged deflated bytes
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        MemoryError,
        zipfile.BadZipFile,
        csv.Error,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as err:
        raise FewshotError(
            f"{path} is corrupt or truncated ({type(err).__name__}: {first_line(err)}); "
            f"fetch it again with `fewshot data fetch omniglot`"
        ) from err


def _decode(folder: Path, layout: str, runs: Path | None, size: int) -> ClassImages:
    if layout == "arrays":
        table = _guarded(folder / ARRAY_FILES[2], _read_table, folder / ARRAY_FILES[2])
        strokes = [
            _guarded(folder / f, _read_npz, folder / f, len([t for t in table if t["set"] == s]))
            for f, s in zip(ARRAY_FILES[:2], SETS)
        ]
    else:
        table, strokes = [], []
        for name, s in zip(ZIP_FILES, SETS):
            rows, images = _guarded(folder / name, _read_official_zip, folder / name, s)
            table += rows
            strokes.append(images)
    strokes_all = np.concatenate(strokes)  # [1623, 20, 105, 105] bool, True on strokes
    order = np.argsort([t["char_id"] for t in table], kind="stable")
    table = [table[i] for i in order]
    strokes_all = strokes_all[order]
    n_chars, n_drawers = strokes_all.shape[:2]
    flat = torch.from_numpy(strokes_all.reshape(-1, 105, 105))
    images = resize_strokes(flat, size)
    classes = tuple(
        ClassInfo(
            f"{t['alphabet']}/{t['character']}",
            t["alphabet"],
            {"char_id": t["char_id"], "set": t["set"], "character": t["character"]},
        )
        for t in table
    )
    extras = {}
    if runs is not None:
        extras = _guarded(runs, _read_runs, runs, flat.numpy(), n_drawers)
    return ClassImages(
        images=images, labels=torch.arange(n_chars).repeat_interleave(n_drawers), classes=classes, extras=extras
    )


def _read_table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = [
            {
                "char_id": int(r["char_id"]),
                "set": r["set"],
                "npz_index": int(r["npz_index"]),
                "alphabet": r["alphabet"],
                "character": r["character"],
            }
            for r in csv.DictReader(f)
        ]
    if len(rows) != 1623 or {r["set"] for r in rows} != set(SETS):
        raise ValueError(f"expected 1,623 characters in two sets, found {len(rows)}")
    if len({r["char_id"] for r in rows}) != len(rows) or len({(r["alphabet"], r["character"]) for r in rows}) != len(
        rows
    ):
        raise ValueError("a character id or an alphabet/character name is listed twice")
    for which in SETS:
        indices = sorted(r["npz_index"] for r in rows if r["set"] == which)
        if indices != list(range(len(indices))):
            raise ValueError(f"the {which} set's npz_index column is not 0..{len(indices) - 1}, each once")
    return sorted(rows, key=lambda r: (SETS.index(r["set"]), r["npz_index"]))


def _read_npz(path: Path, expected: int) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        shape, dtype = npy_headers(archive).get("images", (None, None))
    if shape != (expected, DRAWERS, SIDE, SIDE) or dtype is None or dtype.kind not in "biu":
        raise ValueError(f"images are {dtype} {shape}, expected integers of ({expected}, {DRAWERS}, {SIDE}, {SIDE})")
    with np.load(path, allow_pickle=False) as z:
        images = z["images"]
    return ~images.astype(bool)  # the files store background as True


# A member of an official zip: images_SET/ALPHABET/characterNN/IIII_DD.png (character id IIII, drawer DD).
_PNG = re.compile(r"^images_[a-z0-9_]+/([^/.][^/]*)/(character\d+)/(\d+)_(\d+)\.png$")
_FOLDER = re.compile(r"^images_[a-z0-9_]+/(?:[^/.][^/]*/(?:character\d+/)?)?$")
SIDE, DRAWERS = 105, 20
MAX_MEMBER = 1 << 20  # bytes; Omniglot's PNGs are under 1 KiB


def _read_official_zip(path: Path, which: str) -> tuple[list[dict], np.ndarray]:
    """Decode an official zip in place: (character rows, strokes [chars, 20, 105, 105]). Every member's name
    is checked against the release's layout, and every image's size against 105x105, before any decoding."""
    by_char: dict[int, dict] = {}
    names: dict[tuple[str, str], int] = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename
            if _FOLDER.match(name):
                continue
            m = _PNG.match(name)
            drawer = int(m.group(4)) if m else 0
            if not m or not 1 <= drawer <= DRAWERS:
                raise FewshotError(
                    f"{path}: member {name!r} is not images_SET/ALPHABET/characterNN/IIII_DD.png with a drawer DD "
                    f"of 01..{DRAWERS}; fetch the official zip again with `fewshot data fetch omniglot`"
                )
            alphabet, character, char_id = m.group(1), m.group(2), int(m.group(3))
            if names.setdefault((alphabet, character), char_id) != char_id:
                raise FewshotError(
                    f"{path}: member {name!r} gives {alphabet}/{character} a second character id "
                    f"({names[(alphabet, character)]} and {char_id}); fetch the official zip again"
                )
            row = by_char.setdefault(
                char_id,
                {"char_id": char_id, "set": which, "alphabet": alphabet, "character": character, "images": [None] * 20},
            )
            if (row["alphabet"], row["character"]) != (alphabet, character) or row["images"][drawer - 1] is not None:
                raise FewshotError(
                    f"{path}: member {name!r} repeats character {char_id}'s drawer {drawer} or gives that "
                    f"character a second name; fetch the official zip again"
                )
            row["images"][drawer - 1] = _strokes(z, info, f"{path}: member {name!r}")
    rows = [by_char[k] for k in sorted(by_char)]
    if not rows:
        raise ValueError("the archive holds no images_SET/ALPHABET/characterNN/IIII_DD.png images")
    short = next((r for r in rows if any(img is None for img in r["images"])), None)
    if short is not None:
        raise ValueError(
            f"character {short['alphabet']}/{short['character']} has "
            f"{sum(img is not None for img in short['images'])} drawers, not {DRAWERS}"
        )
    strokes = np.stack([np.stack(r.pop("images")) for r in rows])
    return rows, strokes


def _strokes(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """A 105x105 image of the archive as strokes (True on ink); its sizes are checked before decoding."""
    if info.file_size > MAX_MEMBER:
        raise FewshotError(f"{where} unpacks to {info.file_size:,} bytes, not a {SIDE}x{SIDE} image")
    with opened_image(z.read(info), where, SIDE * SIDE) as image:
        if image.size != (SIDE, SIDE) or image.mode != "1":
            raise FewshotError(
                f"{where} is a {image.size[0]}x{image.size[1]} {image.mode} image, not Omniglot's {SIDE}x{SIDE} "
                f"black and white (mode 1)"
            )
        return ~np.array(image, dtype=bool)


def _read_runs(path: Path, strokes: np.ndarray, n_drawers: int) -> dict[str, torch.Tensor]:
    """Lake's twenty runs as image indices into the dataset, found by exact pixel match."""
    keys = {np.packbits(img).tobytes(): i for i, img in enumerate(strokes)}
    support, query, classes = [], [], []
    with zipfile.ZipFile(path) as z:
        for run in range(1, 21):
            prefix = f"run{run:02d}/"
            pairs = [line.split() for line in z.read(prefix + "class_labels.txt").decode().split("\n") if line.strip()]

            def index_of(member: str) -> int:
                img = _strokes(z, z.getinfo(member), f"{path}: member {member!r}")
                found = keys.get(np.packbits(img).tobytes())
                if found is None:
                    raise ValueError(f"{member} matches no Omniglot image")
                return found

            class_files = sorted({c for _, c in pairs})
            run_support = [index_of(c) for c in class_files]
            by_class = {c: index_of(q) for q, c in pairs}
            if len(by_class) != len(class_files) or len(class_files) != 20:
                raise ValueError(f"run {run} is not 20-way with one query per class")
            support.append(run_support)
            query.append([by_class[c] for c in class_files])
            classes.append([i // n_drawers for i in run_support])

    def as_tensor(rows):
        return torch.tensor(rows, dtype=torch.int64)

    return {"runs_support": as_tensor(support), "runs_query": as_tensor(query), "runs_classes": as_tensor(classes)}


def _vinyals_split(folder: Path, file: str, table: dict[tuple[str, str], int]) -> Split:
    path = folder / "vinyals" / file
    if not path.exists():
        raise FewshotError(f"no {path}: the vinyals protocol needs Snell et al.'s split files; {FETCH_HINT}")
    classes, turns = [], []
    for line in _guarded(path, path.read_text).split():
        parts = line.split("/")
        alphabet, character, rotation = parts if len(parts) == 3 else ("", "", "")
        if (alphabet, character) not in table or rotation not in ROTATIONS:
            raise FewshotError(
                f"{path} names {line[:80]!r}, which is no ALPHABET/CHARACTER/rot000..rot270 of Omniglot: "
                f"fetch the split files again"
            )
        classes.append(table[(alphabet, character)])
        turns.append(ROTATIONS.index(rotation))
    return Split.of(classes, turns)
