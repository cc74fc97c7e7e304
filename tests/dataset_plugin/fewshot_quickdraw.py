"""Quick, Draw! (Jongejan et al. 2016): 345 categories of doodles, as a fewshot dataset plug-in.

Reads the release's numpy bitmaps in place: ``DATA_ROOT/quickdraw/<category>.npy``,
each ``[drawings, 784]`` uint8 (28x28). The first ``PER_CLASS`` drawings of each
category are decoded once into the cache. Protocol ``categories``: the
categories, shuffled by a fixed seed, split 70% / 15% / 15% into train / val /
test, as Meta-Dataset splits Quick Draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split, cached, resize_strokes
from fewshot.core.dataset import Dataset
from fewshot.core.errors import FewshotError

VERSION = 1
PER_CLASS = 100
SPLIT_SEED = 0
WHERE = "put the numpy bitmaps (<category>.npy) of https://github.com/googlecreativelab/quickdraw-dataset there"


class QuickDraw(Dataset):
    name = "quickdraw"
    summary = f"doodles of 345 categories, {PER_CLASS} per category (Quick, Draw!)"
    citation = "Jongejan, Rowley, Kawashima, Kim and Fox-Gieg 2016, The Quick, Draw! A.I. Experiment"
    protocols = ("categories",)
    default_protocol = "categories"

    def status(self, root: Path) -> tuple[bool, str]:
        files = sorted((Path(root) / "quickdraw").glob("*.npy"))
        if not files:
            return False, f"no categories in {Path(root) / 'quickdraw'}: {WHERE}"
        return True, f"{len(files)} categories in {Path(root) / 'quickdraw'}"

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        files = sorted((Path(root) / "quickdraw").glob("*.npy"))
        if len(files) < 3:
            raise FewshotError(f"{Path(root) / 'quickdraw'} holds {len(files)} categories, fewer than 3: {WHERE}")
        # The release is tens of gigabytes: file names and sizes key the decode cache, not md5s.
        files_key = {f.name: f.stat().st_size for f in files}
        data = cached(self.name, VERSION, size, lambda: decode(files, size), files=files_key)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
        train, val = round(0.70 * len(files)), round(0.15 * len(files))
        splits = {
            "train": Split.of(order[:train]),
            "val": Split.of(order[train : train + val]),
            "test": Split.of(order[train + val :]),
        }
        return Benchmark(self.name, protocol, data, splits, notes="categories split 70/15/15 by a fixed seed")


def decode(files: list[Path], size: int) -> ClassImages:
    drawings = []
    for file in files:
        bitmaps = np.load(file, mmap_mode="r", allow_pickle=False)[:PER_CLASS]  # the files are large: read the head
        if len(bitmaps) < PER_CLASS or bitmaps.shape[1:] != (784,):
            raise FewshotError(f"{file} is not a Quick Draw bitmap file of at least {PER_CLASS} drawings")
        drawings.append(np.asarray(bitmaps).reshape(-1, 28, 28))
    strokes = torch.from_numpy(np.concatenate(drawings)).float() / 255
    return ClassImages(
        images=resize_strokes(strokes, size),
        labels=torch.arange(len(files)).repeat_interleave(PER_CLASS),
        classes=tuple(ClassInfo(file.stem, "quickdraw") for file in files),
    )
