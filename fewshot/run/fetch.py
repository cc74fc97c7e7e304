"""Downloads of official dataset releases, only when asked (`fewshot data fetch NAME`).

A dataset declares what to download as its ``manifest`` (files, URLs, md5s;
see ``fewshot.core.dataset``); this module fetches any dataset that has one.
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
from collections.abc import Iterator
from pathlib import Path

from fewshot.core import registry
from fewshot.core.data import file_digest
from fewshot.core.errors import FewshotError


def fetch(dataset: str, root: Path, mirror: str | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Download the files of ``dataset``'s manifest into ``root/NAME``; yields one line per file."""
    source = registry.dataset(dataset)
    if not source.manifest:
        _, where = source.status(Path(root))
        raise FewshotError(f"{dataset} cannot be downloaded (it declares no download manifest): {where}")
    folder = Path(root) / source.name
    for file in source.manifest:
        target = folder / file.path
        if target.exists() and file_digest(target) == file.md5:
            yield f"{file.path}: already present (md5 ok)"
            continue
        url = mirror.rstrip("/") + "/" + file.path if mirror else file.url
        size = _download(url, target, file.md5, timeout)
        yield f"{file.path}: {size:,} bytes from {url} (md5 ok)"
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
            raise FewshotError(
                f"{url} has md5 {digest.hexdigest()}, not the published {md5}: the download is damaged "
                f"or the source serves another file; nothing was written, try again or another --mirror"
            )
        os.replace(tmp, target)
        return size
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise FewshotError(f"cannot download {url} ({reason}); check the network or pass --mirror URL") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
