"""Images per second and peak memory of `fewshot data import`, on synthetic files in each format researchers have.

Writes mini-ImageNet-sized data (by default 60,000 84x84x3 images of 100 classes, split 64 / 16 / 20) in each
format, then imports each in a child process of its own and reads that child's peak resident memory
(its ``VmHWM`` on Linux, else ``ru_maxrss``: see :func:`peak_rss_mb`), before and after the import:

* ``pickles``: mini-ImageNet's cache pickles (``mini-imagenet-cache-{train,val,test}.pkl``);
* ``csv``: Ravi's ``{train,val,test}.csv`` beside ``images/`` of 84x84 JPEGs;
* ``tiered-png``: tieredImageNet's ``{split}_images_png.pkl`` (lists of PNGs, as ``cv2.imencode`` arrays)
  with ``{split}_labels.pkl``;
* ``tiered-npz``: tieredImageNet's ``{split}_images.npz`` with the same labels.

The images are smooth gradients with noise, so PNG and JPEG sizes are near a photograph's. Usage:
  python benchmarks/import_speed.py [--images 60000] [--formats pickles,csv,tiered-png,tiered-npz]
Prints a line per format, then one JSON line, last. Goal: tieredImageNet-sized imports under 2 GB of memory.
"""

import argparse
import io
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROLES = ("train", "val", "test")
CLASS_SHARES = {"train": 64, "val": 16, "test": 20}
FORMATS = ("pickles", "csv", "tiered-png", "tiered-npz")


def images_of(seed: int, n: int) -> np.ndarray:
    """``n`` smooth colour gradients with noise, uint8 ``[n, 84, 84, 3]``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:84, 0:84]
    out = np.empty((n, 84, 84, 3), np.uint8)
    for i in range(n):
        slope = rng.uniform(0.3, 3, 3)
        base = np.stack([x * slope[0], y * slope[1], (x + y) * slope[2]], -1) + rng.uniform(0, 255, 3)
        out[i] = (base + rng.normal(0, 6, (84, 84, 3))) % 256
    return out


def encoded(image: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def splits(total: int) -> dict[str, tuple[list[str], int]]:
    """Each split's class names and images per class (at least 2)."""
    per_class = max(2, total // 100)
    first = {"train": 0, "val": 64, "test": 80}
    return {role: ([f"n{first[role] + c:08d}" for c in range(n)], per_class) for role, n in CLASS_SHARES.items()}


def write(fmt: str, folder: Path, total: int) -> int:
    """Write ``total`` images (about) in ``fmt`` into ``folder``; returns how many were written."""
    folder.mkdir(parents=True)
    written = 0
    for r, (role, (classes, per_class)) in enumerate(splits(total).items()):
        n = len(classes) * per_class
        images = images_of(r, n)
        labels = np.repeat(np.arange(len(classes)), per_class)
        written += n
        if fmt == "pickles":
            class_dict = {c: list(range(i * per_class, (i + 1) * per_class)) for i, c in enumerate(classes)}
            with open(folder / f"mini-imagenet-cache-{role}.pkl", "wb") as f:
                pickle.dump({"image_data": images, "class_dict": class_dict}, f, protocol=4)
        elif fmt == "csv":
            (folder / "images").mkdir(exist_ok=True)
            lines = ["filename,label"]
            for i, image in enumerate(images):
                name = f"{classes[labels[i]]}{i:08d}.jpg"
                (folder / "images" / name).write_bytes(encoded(image, "JPEG"))
                lines.append(f"{name},{classes[labels[i]]}")
            (folder / f"{role}.csv").write_text("\n".join(lines) + "\n")
        else:
            general = labels * 4 // len(classes)  # four categories a split
            record = {
                "label_specific": labels.astype(np.int32),
                "label_general": general.astype(np.int32),
                "label_specific_str": classes,
                "label_general_str": [f"category {role} {k}" for k in range(4)],
            }
            (folder / f"{role}_labels.pkl").write_bytes(pickle.dumps(record, protocol=2))
            if fmt == "tiered-png":
                pngs = [np.frombuffer(encoded(image, "PNG"), np.uint8).reshape(-1, 1) for image in images]
                with open(folder / f"{role}_images_png.pkl", "wb") as f:
                    pickle.dump(pngs, f, protocol=2)
                del pngs
            else:
                np.savez(folder / f"{role}_images.npz", images=images[..., ::-1])
        del images
    return written


def child(fmt: str, folder: str) -> None:
    """Import ``folder`` as ``fmt`` in this process; print its time and peak memory as JSON."""
    from fewshot.tasks.mini_imagenet import MiniImageNetImport
    from fewshot.tasks.tiered_imagenet import TieredImageNetImport

    importer = TieredImageNetImport() if fmt.startswith("tiered") else MiniImageNetImport()
    before = peak_rss_mb()
    start = time.perf_counter()
    line = importer.import_files("bench", Path(folder), {})
    seconds = time.perf_counter() - start
    print(json.dumps({"line": line, "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ``ru_maxrss`` keeps the peak of the process that forked
    it across ``exec`` (the parent's, holding the files it wrote), so its own ``VmHWM`` is read where there is
    one; elsewhere ``ru_maxrss``."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=60_000, help="images in all, about (100 classes)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--child", nargs=2, metavar=("FORMAT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in args.formats.split(","):
            if fmt not in FORMATS:
                raise SystemExit(f"unknown format {fmt}: choose of {', '.join(FORMATS)}")
            folder = Path(scratch) / fmt
            n = write(fmt, folder, args.images)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            env = {**os.environ, "FEWSHOT_CACHE": str(Path(scratch) / f"cache-{fmt}")}
            done = subprocess.run(
                [sys.executable, __file__, "--child", fmt, str(folder)], capture_output=True, text=True, env=env
            )
            if done.returncode:
                raise SystemExit(f"{fmt}: the import failed: {done.stderr.strip()[-2000:]}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            results[fmt] = {
                "images": n,
                "source_mb": round(size / 2**20, 1),
                "seconds": round(measured["seconds"], 2),
                "images_per_second": round(n / measured["seconds"]),
                "peak_rss_mb": round(measured["peak_rss_mb"]),
                "rss_before_import_mb": round(measured["rss_before_mb"]),
            }
            print(f"{fmt}: {results[fmt]}", flush=True)
            for path in sorted(folder.rglob("*"), reverse=True):  # free the disk before the next format
                path.unlink() if path.is_file() else path.rmdir()
    print(json.dumps({"benchmark": "import_speed", "images": args.images, "formats": results}))


if __name__ == "__main__":
    main()
