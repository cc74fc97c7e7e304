import csv
import io
import re
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import png_header, run_main
from fewshot.core.data import resize_strokes
from fewshot.core.errors import FewshotError
from fewshot.core.sampler import FixedSampler
from fewshot.run.experiment import open_benchmark
from fewshot.tasks import omniglot as omniglot_module


def test_counts(omniglot):
    data = omniglot["lake"].data
    assert data.images.shape == (1623 * 20, 1, 28, 28)
    assert torch.equal(data.class_counts(), torch.full((1623,), 20))
    assert len(omniglot["lake"].split("train")) == 964 and len(omniglot["lake"].split("test")) == 659
    assert len({c.group for c in data.classes}) == 50
    vinyals = omniglot["vinyals"]
    train_chars = set(vinyals.split("train").classes.tolist())
    test_chars = set(vinyals.split("test").classes.tolist())
    assert (len(train_chars), len(test_chars)) == (1200, 423)
    assert (len(vinyals.split("train")), len(vinyals.split("test"))) == (4800, 1692)
    assert (
        set(vinyals.split("val").classes.tolist()) <= train_chars
        and len(set(vinyals.split("val").classes.tolist())) == 172
    )


def test_one_image_against_the_official_zip(omniglot, data_root):
    data = omniglot["lake"].data
    with zipfile.ZipFile(data_root / "omniglot" / "images_background_small1.zip") as z:
        png = z.read("images_background_small1/Balinese/character01/0108_01.png")
    strokes = ~np.array(Image.open(io.BytesIO(png)), dtype=bool)
    index = next(i for i, c in enumerate(data.classes) if c.meta["char_id"] == 108)
    assert data.classes[index].name == "Balinese/character01"
    expected = resize_strokes(torch.from_numpy(strokes)[None], 28)[0]
    assert torch.equal(data.images[index * 20], expected)
    assert expected.float().mean() > 5, "strokes are bright"


def test_zip_layout_decodes_to_the_same_arrays(omniglot, data_root):
    rows, strokes = omniglot_module._read_official_zip(
        data_root / "omniglot" / "images_background_small2.zip", "background"
    )
    data = omniglot["lake"].data
    by_id = {c.meta["char_id"]: i for i, c in enumerate(data.classes)}
    assert len(rows) == 156
    ours = torch.stack([data.images[by_id[r["char_id"]] * 20 : by_id[r["char_id"]] * 20 + 20] for r in rows])
    theirs = resize_strokes(torch.from_numpy(strokes.reshape(-1, 105, 105)), 28).view(156, 20, 1, 28, 28)
    assert torch.equal(ours, theirs)
    assert [data.classes[by_id[r["char_id"]]].name for r in rows[:2]] == [
        f"{r['alphabet']}/{r['character']}" for r in rows[:2]
    ]


def test_lake_runs_are_twenty_within_alphabet_one_shot_runs(omniglot):
    bench = omniglot["lake-runs"]
    runs = FixedSampler(bench.data, bench.fixed["test"])
    assert len(runs) == 20 and (runs.ways, runs.shots, runs.queries) == (20, 1, 1)
    evaluation = {i for i, c in enumerate(bench.data.classes) if c.meta["set"] == "evaluation"}
    for i in range(20):
        episode = runs[i]
        classes = episode.class_ids.tolist()
        assert len({bench.data.classes[c].group for c in classes}) == 1, "a run stays within one alphabet"
        assert set(classes) <= evaluation
        support_labels = bench.data.labels[episode.support_items // 4]
        query_labels = bench.data.labels[episode.query_items // 4]
        assert support_labels.tolist() == classes and query_labels.tolist() == classes
        assert not set(episode.support_items.tolist()) & set(episode.query_items.tolist()), "different drawers"


def test_missing_data_root_says_how_to_fix(tmp_path):
    with pytest.raises(FewshotError, match="fewshot data fetch omniglot"):
        open_benchmark("omniglot", "lake", tmp_path)


def _copy_data(data_root, tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    for name in ("images_background.npz", "images_evaluation.npz", "omniglot_characters.csv"):
        shutil.copy(data_root / "omniglot" / name, folder / name)
    return folder


def test_truncated_npz_is_reported(data_root, tmp_path):
    folder = _copy_data(data_root, tmp_path)
    raw = (folder / "images_evaluation.npz").read_bytes()
    (folder / "images_evaluation.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FewshotError, match=r"images_evaluation.npz is corrupt or truncated"):
        open_benchmark("omniglot", "lake", tmp_path)


def test_corrupt_npz_is_reported(data_root, tmp_path):
    folder = _copy_data(data_root, tmp_path)
    raw = bytearray((folder / "images_background.npz").read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    (folder / "images_background.npz").write_bytes(bytes(raw))
    with pytest.raises(FewshotError, match=r"images_background.npz is corrupt or truncated"):
        open_benchmark("omniglot", "lake", tmp_path)


def test_corrupt_runs_zip_is_reported(data_root, tmp_path):
    folder = _copy_data(data_root, tmp_path)
    (folder / "all_runs.zip").write_bytes((data_root / "omniglot" / "all_runs.zip").read_bytes()[:5000])
    with pytest.raises(FewshotError, match=r"all_runs.zip is corrupt or truncated"):
        open_benchmark("omniglot", "lake-runs", tmp_path)


def test_protocol_without_its_files_says_which(data_root, tmp_path):
    _copy_data(data_root, tmp_path)
    with pytest.raises(FewshotError, match="vinyals"):
        open_benchmark("omniglot", "vinyals", tmp_path)
    with pytest.raises(FewshotError, match="unknown omniglot protocol"):
        open_benchmark("omniglot", "nope", tmp_path)


def test_omniglot_as_source_of_episodes_on_mnist_digits(data_root, omniglot):
    from fewshot.run.experiment import open_benchmark

    shifted = open_benchmark("omniglot", "vinyals", data_root, target="mnist")
    base = omniglot["vinyals"]
    offset = len(base.data.classes)
    assert torch.equal(shifted.split("train").classes, base.split("train").classes)
    test, target = shifted.split("test"), shifted.split("target")
    assert test.classes.tolist() == list(range(offset, offset + 10)) == target.classes.tolist()
    assert int(test.image_mask.sum()) == 2000 and int(target.image_mask.sum()) == 8000
    assert not bool((test.image_mask & target.image_mask).any())
    assert set(shifted.data.domains[test.image_mask].tolist()) == {1}
    assert shifted.data.image_shape == base.data.image_shape


def _png(size=105, mode="1") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (size, size), 1).save(buffer, "PNG")
    return buffer.getvalue()


def official_zips(root, members=None, omit=()):
    """Official-layout zips of two alphabets of two characters each (20 drawers), in ``root/omniglot``; ``members``
    adds or replaces members of the background zip (name -> bytes), ``omit`` leaves some out."""
    folder = root / "omniglot"
    folder.mkdir(parents=True, exist_ok=True)
    for name, which, first in (("images_background.zip", "background", 1), ("images_evaluation.zip", "evaluation", 3)):
        content = {
            f"images_{which}/Alpha{first}/character0{c + 1}/{first + c:04d}_{d:02d}.png": _png()
            for c in range(2)
            for d in range(1, 21)
        }
        if which == "background":
            content = {k: v for k, v in {**content, **(members or {})}.items() if k not in omit}
        with zipfile.ZipFile(folder / name, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"images_{which}/", b"")
            for member, raw in content.items():
                z.writestr(member, raw)
    return folder


def test_official_zips_decode(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    data = omniglot_module.load(official_zips(tmp_path))
    assert data.images.shape == (4 * 20, 1, 28, 28) and [c.name for c in data.classes][:1] == ["Alpha1/character01"]


BACKGROUND = "images_background/Alpha1/character02/"
HOSTILE_ZIPS = {
    "drawer 21": ({BACKGROUND + "0002_21.png": _png()}, (), "0002_21.png' is not images_SET"),
    "bomb": ({BACKGROUND + "0002_20.png": png_header(20000, 20000)}, (), "refused as a possible decompression bomb"),
    "wrong size": ({BACKGROUND + "0002_20.png": _png(50)}, (), "is a 50x50 1 image, not Omniglot's 105x105"),
    "grey": ({BACKGROUND + "0002_20.png": _png(mode="L")}, (), "is a 105x105 L image, not Omniglot's"),
    "damaged png": ({BACKGROUND + "0002_20.png": _png()[:40]}, (), "0002_20.png' is not a readable image"),
    "huge member": ({BACKGROUND + "0002_20.png": bytes(2 << 20)}, (), "unpacks to 2,097,152 bytes"),
    "stray file": ({"images_background/Alpha1/.DS_Store": b"x"}, (), "Alpha1/.DS_Store' is not images_SET"),
    "other layout": ({"images_background/Alpha1/glyph01/0009_01.png": _png()}, (), "is not images_SET"),
    "second id": ({BACKGROUND + "0007_01.png": _png()}, (BACKGROUND + "0002_01.png",), "a second character id"),
    "missing drawer": ({}, (BACKGROUND + "0002_07.png",), "Alpha1/character02 has 19 drawers, not 20"),
}


@pytest.mark.parametrize("members, omit, message", HOSTILE_ZIPS.values(), ids=HOSTILE_ZIPS.keys())
def test_hostile_official_zips_are_refused_in_one_line_naming_the_member(tmp_path, monkeypatch, members, omit, message):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    folder = official_zips(tmp_path, members, omit)
    with pytest.raises(FewshotError, match=re.escape(message)) as raised:
        omniglot_module.load(folder)
    assert "images_background.zip" in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "cache" / "datasets").exists() or not any((tmp_path / "cache" / "datasets").iterdir())


def test_a_hostile_zip_on_the_command_line_is_exit_2_and_leaves_no_cache_entry(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    official_zips(tmp_path, {BACKGROUND + "0002_21.png": _png()})
    argv = "eval --learner protonet --dataset omniglot --protocol lake --ways 2 --shots 1 --episodes 2".split()
    code, _, err = run_main(capfd, *argv, "--budget", "1steps", "--data-root", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "0002_21.png' is not images_SET" in err, err
    assert not (tmp_path / "cache" / "datasets").exists() or not any((tmp_path / "cache" / "datasets").iterdir())


def test_a_bad_line_of_a_split_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    folder = official_zips(tmp_path)
    (folder / "vinyals").mkdir()
    for name in ("train.txt", "val.txt", "test.txt"):
        (folder / "vinyals" / name).write_text("Alpha1/character01/rot000\n")
    for line in (
        "Alpha1/character01/rot045",
        "Alpha1/character01",
        "Alpha1/character01/rot000/x",
        "Alpha1/character01/rotXYZ",
    ):
        (folder / "vinyals" / "trainval.txt").write_text(line + "\n")
        with pytest.raises(FewshotError, match=r"which is no ALPHABET/CHARACTER/rot000\.\.rot270 of Omniglot"):
            open_benchmark("omniglot", "vinyals", tmp_path)


def test_an_npz_declaring_another_shape_is_refused_before_it_is_read(tmp_path, data_root):
    folder = _copy_data(data_root, tmp_path)
    with zipfile.ZipFile(folder / "images_background.npz", "w") as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (964, 20, 10**6, 105)}
        )
        z.writestr("images.npy", header.getvalue())
    with pytest.raises(FewshotError, match=r"images_background.npz is corrupt or truncated .*declares"):
        open_benchmark("omniglot", "lake", tmp_path)


def test_a_character_table_that_would_misalign_the_arrays_is_refused(tmp_path, data_root):
    folder = _copy_data(data_root, tmp_path)
    with open(folder / "omniglot_characters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1]["npz_index"] = rows[0]["npz_index"]  # two characters read from one image block, one never
    with open(folder / "omniglot_characters.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(FewshotError, match=r"omniglot_characters.csv is corrupt .*npz_index column is not 0\.\.963"):
        open_benchmark("omniglot", "lake", tmp_path)


def test_damaged_deflated_bytes_or_compression_method_are_one_line(tmp_path, monkeypatch):
    """Found by tests/fuzz: zlib.error on damaged deflated bytes and NotImplementedError on a damaged compression
    method were tracebacks."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    folder = official_zips(tmp_path)
    zip_path = folder / "images_background.zip"
    whole = zip_path.read_bytes()
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(BACKGROUND + "0002_01.png")
    method = bytearray(whole)
    central = whole.rindex(b"PK\x01\x02", 0, whole.rindex(info.filename.encode()))
    method[central + 10] = 99  # the compression method in the member's central directory entry
    deflated = bytearray(whole)
    start = info.header_offset + 30 + len(info.filename.encode())
    deflated[start : start + 8] = b"\xff" * 8
    for damaged in (method, deflated):
        zip_path.write_bytes(bytes(damaged))
        with pytest.raises(FewshotError, match=r"images_background.zip is corrupt or truncated \(") as raised:
            omniglot_module.load(folder)
        assert "\n" not in str(raised.value)
