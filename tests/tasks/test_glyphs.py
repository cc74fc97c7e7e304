import json
import unicodedata

import pytest
import torch

from fewshot.tasks import glyphs as glyphs_module
from fewshot.tasks.glyphs import ZERO_SHOT, Glyphs


def test_classes_carry_name_script_and_instances(glyphs):
    data = glyphs.data
    assert data.images.shape[1:] == (1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.class_counts(), torch.full((len(data.classes),), 20))
    assert len(data.classes) > 2000
    for info in data.classes[::97]:
        assert unicodedata.name(info.meta["char"]) == info.name
        assert info.name.startswith(info.group + " ") and info.group in glyphs_module.SCRIPTS
    assert data.domain_names == ("sans", "serif", "mono")
    assert set(data.domains.unique().tolist()) == {0, 1, 2}
    assert data.images.float().mean() > 10, "strokes are bright on a dark background"


def test_split_by_script(glyphs):
    scripts = {
        role: {glyphs.data.classes[c].group for c in glyphs.split(role).classes.tolist()}
        for role in ("train", "val", "test")
    }
    assert scripts["train"] == set(glyphs_module.SPLIT["train"])
    assert scripts["test"] == set(glyphs_module.SPLIT["test"])
    assert not scripts["train"] & scripts["test"] and not scripts["val"] & scripts["test"]
    assert len(glyphs.split("test")) >= 500 and len(glyphs.split("train")) >= 1500


def test_visually_identical_letters_are_one_class(glyphs):
    names = {c.name: c for c in glyphs.data.classes}
    latin_a = names["LATIN CAPITAL LETTER A"]
    assert "GREEK CAPITAL LETTER ALPHA" in latin_a.meta["merged"]
    assert "GREEK CAPITAL LETTER ALPHA" not in names, "merged into the lowest code point's class"
    assert "GREEK SMALL LETTER ALPHA" in names


def test_instances_differ_and_are_deterministic(glyphs):
    first = glyphs.data.images[:20].float()
    assert all(not torch.equal(first[i], first[j]) for i in range(20) for j in range(i))
    theta, stroke = glyphs_module._jitter(torch.tensor([65, 66]).numpy())
    again, stroke_again = glyphs_module._jitter(torch.tensor([65, 66]).numpy())
    assert torch.equal(theta, again) and torch.equal(stroke, stroke_again)
    alone, _ = glyphs_module._jitter(torch.tensor([66]).numpy())
    assert torch.equal(theta[20:], alone), "a letter's jitter depends on its code point alone"


def test_cache_is_loaded_not_rebuilt(glyphs, monkeypatch):
    monkeypatch.setattr(glyphs_module, "build", lambda size: (_ for _ in ()).throw(AssertionError("rebuilt")))
    again = glyphs_module.load(28)
    assert torch.equal(again.images, glyphs.data.images)


def test_every_class_is_described_by_its_name_s_attributes_and_by_its_name_as_text(glyphs):
    source = glyphs_module.Glyphs()
    vocabulary, attributes = source.describe(glyphs.data, "attributes")
    assert attributes.shape == (len(glyphs.data.classes), len(vocabulary))
    row = [c.name for c in glyphs.data.classes].index("LATIN SMALL LETTER E WITH ACUTE")
    assert {vocabulary[j] for j in attributes[row].nonzero().flatten().tolist()} == {
        "script:LATIN",
        "case:SMALL",
        "base:E",
        "with:ACUTE",
    }
    _, text = source.describe(glyphs.data, "text")
    assert text.shape[0] == len(glyphs.data.classes) and torch.allclose(text.norm(dim=1), torch.ones(len(text)))
    with pytest.raises(ValueError, match="no 'sound' descriptions"):
        source.describe(glyphs.data, "sound")


def test_zsl_unseen_classes_are_new_combinations_of_seen_attribute_values():
    source = glyphs_module.Glyphs()
    bench = source.benchmark("zsl", None)
    _vocabulary, attributes = source.describe(bench.data, "attributes")
    train, val, test = (bench.split(role).classes for role in ("train", "val", "test"))
    assert len(test) == glyphs_module.ZERO_SHOT["unseen"] and len(val) == glyphs_module.ZERO_SHOT["val"]
    assert not set(train.tolist()) & set(test.tolist()) and not set(train.tolist()) & set(val.tolist())
    seen = attributes[train].sum(0) > 0
    assert all(seen[attributes[c].bool()].all() for c in test.tolist() + val.tolist())
    assert torch.equal(source.benchmark("zsl", None).split("test").classes, test)


def test_gzsl_tests_on_held_out_images_of_seen_classes_and_all_unseen_images():
    source = glyphs_module.Glyphs()
    zsl, gzsl = source.benchmark("zsl", None), source.benchmark("gzsl", None)
    data, held_out = gzsl.data, glyphs_module.ZERO_SHOT["held_out"]
    train, test = gzsl.split("train"), gzsl.split("test")
    assert torch.equal(train.classes, zsl.split("train").classes)
    assert not bool((train.image_mask & test.image_mask).any()), "no image is both trained on and tested"
    seen_test = torch.bincount(data.labels[test.image_mask], minlength=len(data.classes))
    assert bool((seen_test[train.classes] == held_out).all())
    assert bool((seen_test[zsl.split("test").classes] == glyphs_module.INSTANCES).all())
    assert set(test.classes.tolist()) == set(train.classes.tolist()) | set(zsl.split("test").classes.tolist())


def test_the_zero_shot_split_is_the_one_written_down(glyphs_zsl):
    from importlib.resources import files

    written = json.loads(files("fewshot.tasks").joinpath("glyphs_zero_shot_split.json").read_text())
    names = [c.name for c in glyphs_zsl.data.classes]
    for role in ("val", "test"):
        assert [names[i] for i in glyphs_zsl.split(role).classes.tolist()] == written[role]
    listed = set(written["val"]) | set(written["test"]) | set(written["left_out"])
    assert [names[i] for i in glyphs_zsl.split("train").classes.tolist()] == [n for n in names if n not in listed]
    assert written["settings"] == ZERO_SHOT


def test_zero_shot_benchmarks_describe_their_classes(glyphs_zsl):
    assert glyphs_zsl.sides == ("attributes", "text") and glyphs_zsl.zero_shot and glyphs_zsl.evaluation == ""
    _columns, attributes = Glyphs().describe(glyphs_zsl.data, "attributes")
    assert torch.equal(glyphs_zsl.describe("attributes"), attributes)
    assert glyphs_zsl.describe("text").shape == (len(glyphs_zsl.data.classes), 1024)


def test_a_font_family_shift_trains_on_source_letters_and_tests_on_target_letters_of_new_scripts(glyphs):
    from fewshot.run.experiment import open_benchmark

    shifted = open_benchmark("glyphs", None, source="sans", target="serif")
    sans, serif = glyphs.data.domain_names.index("sans"), glyphs.data.domain_names.index("serif")
    domains = shifted.data.domains
    for role, family in (("train", sans), ("val", sans), ("test", serif), ("target", serif)):
        mask = shifted.split(role).image_mask
        assert bool(mask.any()) and set(domains[mask].tolist()) == {family}, role
    assert torch.equal(shifted.split("target").classes, glyphs.split("train").classes)
    assert torch.equal(shifted.split("test").classes, glyphs.split("test").classes)
    assert shifted.default_queries == 5 and (shifted.source, shifted.target) == ("sans", "serif")
