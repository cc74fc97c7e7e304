"""Shared fixtures: a private cache and results folder per test session, and the real datasets.

Tests that need ``../shared/data`` skip on a developer's machine without it,
but fail when ``CI`` is set: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    return Path(os.environ.get("FEWSHOT_DATA") or REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def private_folders(tmp_path_factory):
    """Decoded datasets and cached checkpoints go to a folder of this session, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    saved = {k: os.environ.get(k) for k in ("FEWSHOT_CACHE", "FEWSHOT_RESULTS")}
    os.environ["FEWSHOT_CACHE"] = str(cache)
    os.environ["FEWSHOT_RESULTS"] = str(tmp_path_factory.mktemp("results") / "results.sqlite")
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory):
    """A cache for one test module (the sweep tests), so that its kill tests find no checkpoint another module
    trained already and really interrupt a training."""
    saved = os.environ["FEWSHOT_CACHE"]
    os.environ["FEWSHOT_CACHE"] = str(tmp_path_factory.mktemp("module-cache"))
    yield
    os.environ["FEWSHOT_CACHE"] = saved


@pytest.fixture
def import_cache(tmp_path, monkeypatch):
    """A cache and results file of this test alone, for tests that import datasets (and look at what is left)."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEWSHOT_RESULTS", str(tmp_path / "results.sqlite"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "omniglot" / "images_background.npz").exists():
        message = f"the shared datasets are not at {root}: set FEWSHOT_DATA"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ["FEWSHOT_DATA"] = str(root)
    return root


@pytest.fixture(scope="session")
def omniglot(data_root):
    from fewshot.run.experiment import open_benchmark

    return {p: open_benchmark("omniglot", p, data_root) for p in ("vinyals", "lake", "lake-runs")}


@pytest.fixture(scope="session")
def glyphs():
    from fewshot.run.experiment import open_benchmark

    return open_benchmark("glyphs", None)


def run_main(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line in this process: its exit status, stdout and stderr."""
    from fewshot.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capfd.readouterr()
    return int(exit_info.value.code or 0), out, err


def refused_import(capfd: pytest.CaptureFixture[str], message: str, *argv: str) -> None:
    """`fewshot data import ARGV` is refused: exit status 2, one line holding ``message``, nothing imported."""
    from fewshot.core.dataset import imports_dir

    code, out, err = run_main(capfd, "data", "import", *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not imports_dir().exists() or not any(imports_dir().iterdir()), "nothing written"


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The installed command line in a fresh process, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fewshot", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="session")
def glyphs_zsl():
    from fewshot.run.experiment import open_benchmark

    return open_benchmark("glyphs", "zsl")


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: what a decompression bomb's header says."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def damage_member(path: Path, member: str | None = None, size: int = 1024) -> None:
    """Overwrite ``size`` bytes in the middle of a zip member's data (the largest member by default), leaving the
    archive's structure whole: the damage only its CRC-32 shows. ``torch.save`` and ``np.savez`` write zips."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member) if member else max(archive.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_length, extra_length = (
        int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_length + extra_length + max(0, info.compress_size // 2 - size // 2)
    end = min(start + size, start + info.compress_size)
    raw[start:end] = bytes(255 - b for b in raw[start:end])
    path.write_bytes(bytes(raw))


def check_split_import(bench, expected, classes_of, images):
    """An imported benchmark of 84x84 RGB images: each class's pixels are ``expected[name]`` ``[n, 84, 84, 3]``,
    and each role's classes are ``classes_of(role)``, no class in two roles."""
    import numpy as np
    import torch

    data = bench.data
    assert data.images.dtype == torch.uint8 and data.images.shape == (images, 3, 84, 84)
    names = [c.name for c in data.classes]
    for row, name in enumerate(names):
        got = data.images[data.labels == row].permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, expected[name]), f"the pixels of {name} differ from those written"
    roles = ("train", "val", "test")
    splits = {role: {names[c] for c in bench.split(role).classes.tolist()} for role in roles}
    assert splits == {role: set(classes_of(role)) for role in roles}, "each split keeps the release's classes"
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])
