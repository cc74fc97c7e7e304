import zipfile

import numpy as np
import pytest
import torch

from conftest import damage_member, png_header
from fewshot.core.data import ClassImages, ClassInfo, DamagedFile, ImagesFile, Split, cached, opened_image
from fewshot.core.errors import FewshotError


def _tiny():
    return ClassImages(
        images=torch.arange(4 * 4, dtype=torch.uint8).view(4, 1, 2, 2),
        labels=torch.tensor([0, 0, 1, 1]),
        classes=(ClassInfo("a", "g", {"x": 1}), ClassInfo("b", "h")),
        domains=torch.tensor([0, 1, 0, 1]),
        domain_names=("sans", "serif"),
        extras={"runs": torch.tensor([[1, 2]])},
    )


def test_save_and_load_round_trip(tmp_path):
    data = _tiny()
    data.save(tmp_path / "d.npz")
    again = ClassImages.load(tmp_path / "d.npz")
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    assert again.classes == data.classes and again.domain_names == data.domain_names
    assert torch.equal(again.domains, data.domains) and torch.equal(again.extras["runs"], data.extras["runs"])


def test_images_must_be_sorted_uint8():
    with pytest.raises(ValueError, match="sorted"):
        ClassImages(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([1, 0]), (ClassInfo("a", "g"),) * 2)
    with pytest.raises(ValueError, match="uint8"):
        ClassImages(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), (ClassInfo("a", "g"),) * 2)


@pytest.mark.parametrize("damage", ["truncated", "one flipped byte"])
def test_a_damaged_cache_entry_is_rebuilt_saying_so(tmp_path, monkeypatch, capfd, damage):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return _tiny()

    cached("tiny", 1, 2, build)
    cached("tiny", 1, 2, build)
    assert len(calls) == 1
    (entry,) = (tmp_path / "datasets").iterdir()
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:100])
    else:
        damage_member(entry, "images.npy", size=1)
    capfd.readouterr()
    assert torch.equal(cached("tiny", 1, 2, build).images, _tiny().images) and len(calls) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"the dataset cache entry {entry} is damaged" in err, err
    assert damage == "truncated" or "CRC-32" in err, err
    ClassImages.load(entry)  # rebuilt whole
    cached("tiny", 2, 2, build)
    assert len(calls) == 3, "another version is another cache entry"


def test_a_failing_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path))

    def build():
        raise FewshotError("the raw files are bad")

    with pytest.raises(FewshotError):
        cached("tiny", 1, 2, build)
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())

    def failing_savez(f, **arrays):  # a write that fails half-way (a full disk)
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(FewshotError, match="cannot write the dataset cache"):
        cached("tiny", 1, 2, _tiny)
    assert not any((tmp_path / "datasets").iterdir()), "no entry and no temporary file left"


def test_an_array_declaring_more_than_its_file_holds_is_refused_before_it_is_allocated(tmp_path):
    path = tmp_path / "d.npz"
    _tiny().save(path)
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(forged, "w") as target:
        for info in source.infolist():
            raw = source.read(info)
            if info.filename == "images.npy":
                raw = raw.replace(b"(4, 1, 2, 2)", b"(400000, 100000, 2, 2)", 1)
            target.writestr(info.filename, raw)
    with pytest.raises(DamagedFile, match="declares"):
        ClassImages.load(forged)


@pytest.mark.parametrize(
    "raw, message",
    [
        (png_header(20000, 20000), "refused as a possible decompression bomb"),
        (png_header(0, 0), "not a readable image|no pixels"),
        (b"", "not a readable image"),
        (png_header(20, 20), "not a readable image"),  # a header and no pixels: fails when decoded
    ],
    ids=["bomb", "zero-size", "empty-file", "no-pixel-data"],
)
def test_images_are_checked_from_their_header_and_every_failure_is_one_line(raw, message):
    with pytest.raises(FewshotError, match=message) as raised:
        with opened_image(raw, "in.png", 100 * 100) as image:
            image.load()
    assert str(raised.value).startswith("in.png ") and "\n" not in str(raised.value)


def test_rotations_are_split_rows():
    split = Split.of([3, 5]).with_rotations()
    assert split.classes.tolist() == [3, 3, 3, 3, 5, 5, 5, 5] and split.rotations.tolist() == [0, 1, 2, 3] * 2
    joined = Split.of([1]).union(Split.of([2], [1]))
    assert joined.classes.tolist() == [1, 2] and joined.rotations.tolist() == [0, 1]


def test_an_images_file_written_block_by_block_maps_as_their_concatenation(tmp_path):
    blocks = [np.random.default_rng(i).integers(0, 256, (n, 3, 5, 4), dtype=np.uint8) for i, n in enumerate((3, 0, 7))]
    with ImagesFile(tmp_path, (3, 5, 4)) as written:
        for block in blocks:
            written.append(block)
        with pytest.raises(ValueError, match="a block of uint8 \\[2, 3, 4, 5\\]"):
            written.append(np.zeros((2, 3, 4, 5), dtype=np.uint8))
        opened = written.opened()
        assert isinstance(opened, np.memmap) and np.array_equal(opened, np.concatenate(blocks))
        assert np.load(written.path).shape == (10, 3, 5, 4), "a plain .npy numpy reads as it is"
    assert not any(tmp_path.iterdir()), "the temporary file is gone once closed"
    with ImagesFile(tmp_path, (1, 2, 2)) as abandoned:
        abandoned.append(np.zeros((4, 1, 2, 2), dtype=np.uint8))
    assert not any(tmp_path.iterdir()), "an abandoned file is removed"
