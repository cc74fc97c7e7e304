"""Downloads of official dataset releases, only when asked (`fewshot data fetch NAME`).

Every file is checked against its published md5 before it takes its place in
the data root; a damaged download is discarded, so the data root only ever
holds whole, verified files. Nothing else in the suite touches the network.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from fewshot.core.data import file_digest
from fewshot.core.errors import FewshotError

OMNIGLOT_RELEASE = "https://github.com/brendenlake/omniglot/raw/master/python/"
SNELL_SPLITS = "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals/"

# dataset -> [(path under the dataset's folder, official URL, md5)]
MANIFESTS: dict[str, list[tuple[str, str, str]]] = {
    "omniglot": [
        ("images_background.zip", OMNIGLOT_RELEASE + "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
        ("images_evaluation.zip", OMNIGLOT_RELEASE + "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
        ("images_background_small1.zip", OMNIGLOT_RELEASE + "images_background_small1.zip",
         "e704a628b5459e08445c13499850abc4"),
        ("images_background_small2.zip", OMNIGLOT_RELEASE + "images_background_small2.zip",
         "b75a71a51d3b13f821f212756fe481fd"),
        ("all_runs.zip", OMNIGLOT_RELEASE + "one-shot-classification/all_runs.zip", "e8996daecdf12afeeb4a53a179f06b19"),
        ("vinyals/train.txt", SNELL_SPLITS + "train.txt", "433d1fcc2b20dcee2983ceb524586f7f"),
        ("vinyals/val.txt", SNELL_SPLITS + "val.txt", "78c535fa427b12b6596908376a0b3f34"),
        ("vinyals/test.txt", SNELL_SPLITS + "test.txt", "43534e6d5f9e74acbb7de1b4874abad8"),
        ("vinyals/trainval.txt", SNELL_SPLITS + "trainval.txt", "888433268015439fd05fb6e9006ead50"),
    ],
}


def fetch(dataset: str, root: Path, mirror: str | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Download ``dataset``'s files into ``root/dataset``; yields one line per file."""
    if dataset not in MANIFESTS:
        from fewshot.core import registry

        if dataset in registry.names("dataset"):
            raise FewshotError(f"{dataset} has nothing to download (see `fewshot datasets`)")
        raise FewshotError(f"unknown dataset {dataset!r}: downloadable datasets are {', '.join(sorted(MANIFESTS))}")
    folder = Path(root) / dataset
    for relative, url, md5 in MANIFESTS[dataset]:
        target = folder / relative
        if target.exists() and file_digest(target) == md5:
            yield f"{relative}: already present (md5 ok)"
            continue
        source = mirror.rstrip("/") + "/" + relative if mirror else url
        size = _download(source, target, md5, timeout)
        yield f"{relative}: {size:,} bytes from {source} (md5 ok)"
    yield f"{dataset} is in {folder}"


def _download(url: str, target: Path, md5: str, timeout: float) -> int:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as err:
        raise FewshotError(f"cannot write into {target.parent}: {err}; choose a writable --data-root") from None
    digest, size = hashlib.md5(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
                size += len(block)
        if digest.hexdigest() != md5:
            raise FewshotError(f"{url} has md5 {digest.hexdigest()}, not the published {md5}: the download is damaged "
                               f"or the source serves another file; nothing was written, try again or another --mirror")
        os.replace(tmp, target)
        return size
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise FewshotError(f"cannot download {url} ({reason}); check the network or pass --mirror URL") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
