import io
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

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
