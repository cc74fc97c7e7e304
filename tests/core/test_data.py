import pytest
import torch

from fewshot.core.data import ClassImages, ClassInfo, Split, cached


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


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return _tiny()

    cached("tiny", 1, 2, build)
    cached("tiny", 1, 2, build)
    assert len(calls) == 1
    (entry,) = (tmp_path / "datasets").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    assert torch.equal(cached("tiny", 1, 2, build).images, _tiny().images) and len(calls) == 2
    cached("tiny", 2, 2, build)
    assert len(calls) == 3, "another version is another cache entry"


def test_rotations_are_split_rows():
    split = Split.of([3, 5]).with_rotations()
    assert split.classes.tolist() == [3, 3, 3, 3, 5, 5, 5, 5] and split.rotations.tolist() == [0, 1, 2, 3] * 2
    joined = Split.of([1]).union(Split.of([2], [1]))
    assert joined.classes.tolist() == [1, 2] and joined.rotations.tolist() == [0, 1]
