"""Fuzzing the files the suite reads: damaged copies are read correctly or refused in one line, never a traceback.

Each test writes a small real file (a decoded-dataset cache entry, Omniglot's official zips, a checkpoint,
Xian et al.'s MATLAB files, a results store), damages a copy of it at random (bytes flipped, cut short, inserted
or deleted, a run zeroed, the header overwritten: :func:`fuzz_helpers.damaged`) and reads it the way a user's
command does. The outcome must be the undamaged content, or :class:`FewshotError` (one line); never another
exception, never a run recorded from a damaged checkpoint, never a store left half-written.

The ``ci`` profile (the default) runs a bounded number of derandomized examples; by hand, many random ones:

    FEWSHOT_FUZZ=long OMP_NUM_THREADS=1 pytest tests/fuzz -q
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from conftest import run_main
from fewshot.core.data import ClassImages, ClassInfo, cached
from fewshot.core.errors import FewshotError
from fuzz_helpers import check_one_line_or_success, damaged, examples
from records_helpers import contents

CELL = ["--ways", "2", "--shots", "1", "--queries", "1", "--episodes", "3", "--quiet", "--json"]


def one_line(err: FewshotError) -> None:
    assert "\n" not in str(err), str(err)


def same_images(a: ClassImages, b: ClassImages) -> bool:
    return (
        torch.equal(a.images, b.images)
        and torch.equal(a.labels, b.labels)
        and a.classes == b.classes
        and (a.domains is None) == (b.domains is None)
        and (a.domains is None or b.domains is None or torch.equal(a.domains, b.domains))
        and a.domain_names == b.domain_names
        and sorted(a.extras) == sorted(b.extras)
        and all(torch.equal(a.extras[k], b.extras[k]) for k in a.extras)
    )


# --- a decoded dataset's cache entry --------------------------------------------------------------------------------


def small_images() -> ClassImages:
    generator = torch.Generator().manual_seed(0)
    return ClassImages(
        images=torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8, generator=generator),
        labels=torch.arange(4).repeat_interleave(3),
        classes=tuple(ClassInfo(f"class{i}", "group", {"i": i}) for i in range(4)),
        domains=torch.tensor([0, 1] * 6),
        domain_names=("a", "b"),
        extras={"runs": torch.arange(6).view(2, 3)},
    )


@examples(60)
@given(data=st.data())
def test_a_damaged_dataset_cache_entry_is_read_whole_or_decoded_again(tmp_path, monkeypatch, data):
    """``cached`` loads the entry, or finds it damaged, says so and decodes anew: the images are always right."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    original = small_images()
    first = cached("fuzzed", 1, 8, lambda: original)
    (entry,) = (tmp_path / "cache" / "datasets").glob("*.npz")
    entry.write_bytes(data.draw(damaged(entry.read_bytes())))
    decoded = []
    again = cached("fuzzed", 1, 8, lambda: decoded.append(1) or original)
    assert same_images(again, original) and again.key == first.key
    event("decoded again" if decoded else "read")
    assert same_images(ClassImages.load(entry), original), "a rebuilt entry is whole"
    entry.unlink()


# --- Omniglot's official zips ---------------------------------------------------------------------------------------


def _png(ink: int) -> bytes:
    image = Image.new("1", (105, 105), 1)
    image.paste(0, (ink, ink, ink + 20, ink + 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def official_zips(folder: Path) -> Path:
    """The official layout in small: two alphabets of one character each (20 drawers) per zip, deflated."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, which, first in (("images_background.zip", "background", 1), ("images_evaluation.zip", "evaluation", 3)):
        with zipfile.ZipFile(folder / name, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"images_{which}/", b"")
            for alphabet in range(2):
                for drawer in range(1, 21):
                    char_id = first + alphabet
                    member = f"images_{which}/Alpha{char_id}/character01/{char_id:04d}_{drawer:02d}.png"
                    z.writestr(member, _png(drawer + 10 * alphabet))
    return folder


@pytest.fixture(scope="module")
def omniglot_zips(tmp_path_factory):
    from fewshot.tasks import omniglot

    folder = official_zips(tmp_path_factory.mktemp("omniglot") / "omniglot")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEWSHOT_CACHE", str(tmp_path_factory.mktemp("cache")))
        return folder, omniglot.load(folder)


@examples(40)
@given(data=st.data(), which=st.sampled_from(["images_background.zip", "images_evaluation.zip"]))
def test_a_damaged_official_zip_is_decoded_right_or_refused_in_one_line(tmp_path, monkeypatch, omniglot_zips, data,
                                                                         which):  # fmt: skip
    from fewshot.tasks import omniglot

    folder, original = omniglot_zips
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "omniglot"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    (copy / which).write_bytes(data.draw(damaged((folder / which).read_bytes())))
    try:
        found = omniglot.load(copy)
    except FewshotError as err:
        one_line(err)
        event("refused")
        entries = tmp_path / "cache" / "datasets"
        assert not entries.exists() or not list(entries.glob("*.npz")), "no cache entry from a refused zip"
    else:
        event("decoded")
        assert same_images(dataclasses.replace(found, key=""), dataclasses.replace(original, key=""))


# --- a checkpoint ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A protonet checkpoint of one step on glyphs, and the result ``eval`` records from it."""
    from fewshot.cli import main

    root = tmp_path_factory.mktemp("checkpoint")
    argv = ["--learner", "protonet", "--budget", "1steps", "--ways", "2", "--shots", "1"]
    with pytest.raises(SystemExit):
        main(["train", *argv, "--quiet", "--out", str(root / "ck.pt")])
    with pytest.raises(SystemExit), pytest.MonkeyPatch.context() as patch:
        out = io.StringIO()
        patch.setattr("sys.stdout", out)
        main(["eval", *argv, *CELL, "--checkpoint", str(root / "ck.pt"), "--results", str(root / "r.sqlite")])
    return root / "ck.pt", json.loads(out.getvalue())


@examples(60)
@given(data=st.data())
def test_a_damaged_checkpoint_loads_whole_or_is_refused_in_one_line(tmp_path, trained, data):
    from fewshot.run import checkpoint

    path, _ = trained
    original = checkpoint.load(path, "protonet")
    copy = tmp_path / "ck.pt"
    copy.write_bytes(data.draw(damaged(path.read_bytes())))
    try:
        found = checkpoint.load(copy, "protonet")
    except FewshotError as err:
        one_line(err)
        event("refused")
    else:
        event("loaded")
        assert found.keys() == original.keys()
        for name, value in original["state"].items():
            assert _same(found["state"][name], value), name


def _same(a, b) -> bool:
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@examples(12)
@given(data=st.data())
def test_eval_of_a_damaged_checkpoint_records_the_undamaged_result_or_nothing(tmp_path, capfd, trained, data):
    path, reference = trained
    copy = tmp_path / "ck.pt"
    copy.write_bytes(data.draw(damaged(path.read_bytes())))
    results = tmp_path / "results.sqlite"
    before = contents(results) if results.exists() else None
    argv = ["eval", "--learner", "protonet", "--budget", "1steps", *CELL, "--checkpoint", str(copy)]
    code, out, err = run_main(capfd, *argv, "--results", str(results))
    check_one_line_or_success(code, out, err, argv)
    event(f"exit {code}")
    if code == 2:
        assert (contents(results) if results.exists() else None) == before, "nothing recorded"
    else:
        found = json.loads(out)
        assert (found["mean"], found["ci95"], found["digest"]) == (
            reference["mean"],
            reference["ci95"],
            reference["digest"],
        )


# --- Xian et al.'s MATLAB files -------------------------------------------------------------------------------------


def toy_mats(folder: Path) -> None:
    """res101.mat and att_splits.mat in Xian et al.'s layout: 6 classes of 5 images, 4 seen and 2 unseen."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 5)
    seen, rank = labels < 4, np.tile(np.arange(5), 6)
    where = lambda mask: (np.flatnonzero(mask) + 1).reshape(-1, 1).astype(np.float64)  # noqa: E731
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "res101.mat", {"features": rng.normal(size=(8, 30)), "labels": (labels + 1).reshape(-1, 1) * 1.0})
    savemat(
        folder / "att_splits.mat",
        {
            "att": rng.normal(size=(3, 6)),
            "trainval_loc": where(seen & (rank >= 1)),
            "test_seen_loc": where(seen & (rank < 1)),
            "test_unseen_loc": where(~seen),
            "train_loc": where((labels < 2) & (rank >= 1)),
            "val_loc": where((labels >= 2) & seen & (rank >= 1)),
        },
    )


@pytest.fixture(scope="module")
def mats(tmp_path_factory):
    from fewshot.tasks.xlsa17 import import_xlsa17, imported_path

    folder = tmp_path_factory.mktemp("xlsa17")
    toy_mats(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEWSHOT_CACHE", str(tmp_path_factory.mktemp("cache")))
        import_xlsa17(folder, "reference")
        return folder, ClassImages.load(imported_path("reference"))


@examples(25)  # each import reads its two files in child processes (about 0.2 s each)
@given(data=st.data(), which=st.sampled_from(["res101.mat", "att_splits.mat"]))
def test_a_damaged_matlab_file_imports_right_or_is_refused_with_nothing_written(tmp_path, monkeypatch, mats, data,
                                                                                which):  # fmt: skip
    from fewshot.tasks.xlsa17 import import_xlsa17, imported_path

    folder, original = mats
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "mats"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    (copy / which).write_bytes(data.draw(damaged((folder / which).read_bytes())))
    imported_path("fuzzed").unlink(missing_ok=True)
    try:
        import_xlsa17(copy, "fuzzed")
    except FewshotError as err:
        one_line(err)
        event("refused")
        assert not imported_path("fuzzed").exists(), "nothing written"
    else:
        event("imported")  # MATLAB files carry no checksum: a damaged number can import; the layout cannot break
        found = ClassImages.load(imported_path("fuzzed"))
        assert found.images.shape == original.images.shape and sorted(found.extras) == sorted(original.extras)


@examples(40)
@given(data=st.data())
def test_a_damaged_import_in_the_cache_is_read_or_refused_in_one_line(tmp_path, monkeypatch, mats, data):
    """The import's own ``.npz`` (what ``--dataset xlsa17:NAME`` reads), damaged after it was written."""
    from fewshot.run.experiment import open_benchmark
    from fewshot.tasks.xlsa17 import import_xlsa17, imported_path

    folder, _ = mats
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    if not imported_path("damaged").exists():
        import_xlsa17(folder, "damaged")
        shutil.copy(imported_path("damaged"), tmp_path / "whole.npz")
    imported_path("damaged").write_bytes(data.draw(damaged((tmp_path / "whole.npz").read_bytes())))
    try:
        bench = open_benchmark("xlsa17:damaged", "gzsl")
    except FewshotError as err:
        one_line(err)
        event("refused")
    else:
        event("read")
        assert same_images(bench.data, ClassImages.load(tmp_path / "whole.npz"))


# --- a results store ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A results store of two runs of one cell (seeds 0 and 1)."""
    from fewshot.cli import main

    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    for seed in ("0", "1"):
        with pytest.raises(SystemExit):
            main(["eval", "--learner", "protonet", "--budget", "1steps", *CELL, "--seed", seed, "--results", str(path)])
    return path


READERS = (("runs", "--all"), ("runs", "--json"), ("leaderboard",), ("leaderboard", "--format", "csv"))


@examples(40)
@given(data=st.data(), reader=st.sampled_from(READERS))
def test_a_damaged_store_is_read_or_refused_in_one_line_and_never_written(tmp_path, capfd, store, data, reader):
    path = tmp_path / "results.sqlite"
    path.write_bytes(data.draw(damaged(store.read_bytes())))
    before = sorted(p.name for p in tmp_path.iterdir()), path.read_bytes()
    code, out, err = run_main(capfd, *reader, "--results", str(path))
    check_one_line_or_success(code, out, err, list(reader))
    event(f"exit {code}")
    assert (sorted(p.name for p in tmp_path.iterdir()), path.read_bytes()) == before, "reading never writes"


def _integrity(path: Path) -> str:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    except (sqlite3.Error, UnicodeDecodeError) as err:  # the check quotes damaged names, which may not be UTF-8
        return f"{type(err).__name__}: {err}"


@examples(40)
@given(data=st.data())
def test_a_write_to_a_damaged_store_records_or_leaves_it_as_it_was(tmp_path, capfd, store, data):
    path = tmp_path / "results.sqlite"
    path.write_bytes(data.draw(damaged(store.read_bytes())))
    listing = ["runs", "--all", "--json", "--results", str(path)]
    before, was, listed = path.read_bytes(), _integrity(path), run_main(capfd, *listing)[0]
    argv = ["runs", "supersede", "1", "--why", "fuzzed", "--results", str(path)]
    code, out, err = run_main(capfd, *argv)
    check_one_line_or_success(code, out, err, argv)
    event(f"exit {code}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["results.sqlite"], ("no journal left beside the store", left)
    if code == 2:
        assert path.read_bytes() == before, "a refused write leaves the store byte for byte"
    else:
        assert was != "ok" or _integrity(path) == "ok", "a whole store stays whole"
        code, out, err = run_main(capfd, *listing)
        if listed == 0:  # what read before the write reads after it, with the write
            assert code == 0 and any(r["superseded"] for r in json.loads(out)["runs"]), (code, err)
        else:  # the write touched only whole pages; the listing meets the damage elsewhere, as before
            check_one_line_or_success(code, out, err, listing)
