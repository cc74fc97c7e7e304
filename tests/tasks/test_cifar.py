"""`fewshot data import cifar-fs` and `fewshot data import fc100`: small files in both exact formats (MetaOptNet's
python 2 pickles and CIFAR-100's python release) imported, compared pixel for pixel, evaluated on; every malformed
variant refused in one line with nothing left in the cache; the shipped splits checked."""

import hashlib
import json
import pickle
import struct
from importlib.resources import files

import numpy as np
import pytest

from conftest import run_main
from fewshot.core import registry
from fewshot.core.dataset import imports_dir
from fewshot.tasks.cifar import CIFAR_FS, FC100, CifarFSImport, FC100Import, fine_names, superclass_of, superclasses
from pickle_helpers import Foreign, Payload, without

ROLES = ("train", "val", "test")
SHARES = {"train": 6, "val": 3, "test": 3}  # 12 classes of the published split in the pickles
PER_CLASS = 8
# protonet trains on natural images with the paper's 15 queries per class: these classes hold 8 images
EVAL = (
    "--learner",
    "protonet",
    "--ways",
    "3",
    "--shots",
    "1",
    "--queries",
    "2",
    "--episodes",
    "4",
    "--hp",
    "train_queries=2",
)
BENCHES = {"cifar-fs": CIFAR_FS, "fc100": FC100}


@pytest.fixture(autouse=True)
def importers():
    """The two formats, registered in this process where the installed entry points (read from the package's
    metadata when it was installed) do not name them yet."""
    added = []
    for name, cls in (("cifar-fs", CifarFSImport), ("fc100", FC100Import)):
        if name not in registry.names("importer"):
            registry.register("importer", name, cls)
            added.append(name)
    yield
    for name in added:
        registry.unregister("importer", name)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEWSHOT_RESULTS", str(tmp_path / "results.sqlite"))
    return tmp_path / "cache"


class Py2Pickler(pickle._Pickler):
    """Writes bytes as python 2's str (SHORT_BINSTRING, BINSTRING), as MetaOptNet's python 2 pickles hold their
    keys and their arrays' raw data: python 3 reads those back only with encoding="latin1"."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str  # type: ignore[assignment]


def py2_dumps(content):
    def keys(obj):  # python 2's str keys
        return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()} if isinstance(obj, dict) else obj

    from io import BytesIO

    out = BytesIO()
    Py2Pickler(out, protocol=2).dump(keys(content))
    return out.getvalue()


def pixels(seed, n=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def split_classes(bench, role):
    return bench.split()[role][: SHARES[role]]


def write_pickles(folder, bench, style="py2", edit=None):
    """The three pickles of ``bench`` holding 12 of its split's classes, images interleaved; returns each class's
    images [n, 32, 32, 3] in file order. ``edit(role, content)`` may spoil one."""
    folder.mkdir(parents=True, exist_ok=True)
    expected, names = {}, fine_names()
    for r, role in enumerate(ROLES):
        classes = split_classes(bench, role)
        images = np.concatenate([pixels(100 * r + c, PER_CLASS) for c in range(len(classes))])
        labels = np.repeat([names.index(name) for name in classes], PER_CLASS)
        order = np.random.default_rng(r).permutation(len(images))
        images, labels = images[order], labels[order]
        expected.update({name: images[labels == names.index(name)] for name in classes})
        content = {"data": images, "labels": [int(label) for label in labels]}
        if edit is not None:
            content = edit(role, content)
        raw = py2_dumps(content) if style == "py2" else pickle.dumps(content, protocol=style)
        (folder / f"{bench.prefix}_{role}.pickle").write_bytes(raw)
    return expected


def write_release(folder, edit=None):
    """A tiny cifar-100-python/: 4 images of every class in train, 2 in test, shuffled, with python 3's bytes keys
    (meta as python 2 wrote it). Returns each class's images [6, 32, 32, 3]: train's, then test's."""
    folder.mkdir(parents=True, exist_ok=True)
    coarse_ids = {name: list(superclasses()).index(coarse) for name, coarse in superclass_of().items()}
    expected: dict[str, list] = {name: [] for name in fine_names()}
    for part, per_class in (("train", 4), ("test", 2)):
        labels = np.repeat(np.arange(100), per_class)
        order = np.random.default_rng(per_class).permutation(len(labels))
        labels = labels[order]
        images = pixels(per_class, len(labels))
        for image, label in zip(images, labels):
            expected[fine_names()[label]].append(image)
        content = {
            b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{part} batch".encode(),
            b"fine_labels": labels.tolist(),
            b"coarse_labels": [coarse_ids[fine_names()[label]] for label in labels],
            b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
        }
        if edit is not None:
            content = edit(part, content)
        (folder / part).write_bytes(pickle.dumps(content, protocol=2))
    meta = {"fine_label_names": [n.encode() for n in fine_names()], "coarse_label_names": list(superclasses())}
    meta["coarse_label_names"] = [n.encode() for n in meta["coarse_label_names"]]
    if edit is not None:
        meta = edit("meta", meta)
    (folder / "meta").write_bytes(py2_dumps(meta))
    return {name: np.stack(images) for name, images in expected.items()}


def check_import(dataset, bench, expected, classes_of):
    data = dataset.benchmark(bench.protocol, None).data
    names = [c.name for c in data.classes]
    assert data.images.shape == (sum(len(v) for v in expected.values()), 3, 32, 32)
    for row, name in enumerate(names):
        got = data.images[data.labels == row].permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, expected[name]), f"the pixels of {name} differ from those written"
        assert data.classes[row].group == superclass_of()[name]
    benchmark = dataset.benchmark(bench.protocol, None)
    splits = {role: {names[c] for c in benchmark.split(role).classes.tolist()} for role in ROLES}
    assert splits == {role: set(classes_of(role)) for role in ROLES}
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])


def test_the_shipped_splits_are_the_published_ones_over_cifar100s_labels():
    names = fine_names()
    assert len(names) == 100 and names == sorted(names), "CIFAR-100's meta lists its fine labels alphabetically"
    groups = superclasses()
    assert len(groups) == 20 and list(groups) == sorted(groups) and all(len(g) == 5 for g in groups.values())
    assert sorted(n for g in groups.values() for n in g) == names
    for bench, sizes in ((CIFAR_FS, (64, 16, 20)), (FC100, (60, 20, 20))):
        split = bench.split()
        assert tuple(len(split[role]) for role in ROLES) == sizes
        assert sorted(n for role in ROLES for n in split[role]) == names, "each class in exactly one split"
        shipped = json.loads(files("fewshot.tasks").joinpath(bench.split_file).read_text())
        assert all("github.com" in source for source in shipped["source"])
    fc100 = json.loads(files("fewshot.tasks").joinpath("fc100_split.json").read_text())
    assert [len(fc100[role]) for role in ROLES] == [12, 4, 4]
    assert fc100["test"] == ["aquatic_mammals", "insects", "medium_mammals", "people"]
    assert {"otter", "lamp", "sea", "cattle"} <= set(CIFAR_FS.split()["val"]) and "whale" in CIFAR_FS.split()["test"]


@pytest.mark.parametrize("format, style", [("cifar-fs", "py2"), ("fc100", 4)])
def test_metaoptnets_pickles_import_with_their_pixels_and_split_and_evaluate(tmp_path, cache, capfd, format, style):
    bench, source = BENCHES[format], tmp_path / "pickles"
    expected = write_pickles(source, bench, style)
    code, out, err = run_main(capfd, "data", "import", format, str(source))
    assert code == 0, err
    assert out.startswith(
        f"imported {format}: 96 images of 12 classes (6 train, 3 val, 3 test) at 32x32x3 from pickles"
    )
    assert f"protocol {bench.protocol}: --dataset {format}" in out
    dataset = registry.dataset(format)
    assert dataset.default_protocol == bench.protocol and bench.citation == dataset.citation
    check_import(dataset, bench, expected, lambda role: split_classes(bench, role))
    record = json.loads((cache / "imports" / f"{format}.json").read_text())
    assert record["files_md5"] == {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in source.iterdir()}
    assert record["layout"] == "pickles" and record["source"] == str(source.resolve())

    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", format, "--budget", "3steps", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["dataset"] == format and result["protocol"] == bench.protocol and result["episodes"] == 4
    code, out, _ = run_main(capfd, "datasets")
    assert f"{bench.title} (pickles in " in out and "96 images of 12 classes (6/3/3), 32x32 RGB" in out


@pytest.mark.parametrize("format, given", [("cifar-fs", "parent"), ("fc100", "release")])
def test_cifar100s_python_release_is_cut_by_the_shipped_split(tmp_path, cache, capfd, format, given):
    bench = BENCHES[format]
    expected = write_release(tmp_path / "cifar-100-python")
    folder = tmp_path if given == "parent" else tmp_path / "cifar-100-python"
    code, out, err = run_main(capfd, "data", "import", format, str(folder), "--name", f"{format}-release")
    assert code == 0, err
    shares = "64 train, 16 val, 20 test" if format == "cifar-fs" else "60 train, 20 val, 20 test"
    assert f"600 images of 100 classes ({shares}) at 32x32x3 from cifar-100-python" in out
    dataset = registry.dataset(f"{format}-release")
    check_import(dataset, bench, expected, lambda role: bench.split()[role])
    record = json.loads((cache / "imports" / f"{format}-release.json").read_text())
    release = tmp_path / "cifar-100-python"
    assert record["files_md5"] == {
        f: hashlib.md5((release / f).read_bytes()).hexdigest() for f in ("train", "test", "meta")
    }
    assert record["source"] == str(release.resolve())
    if format == "fc100":  # FC100's test classes are four whole superclasses
        test = {c for c, role in zip(record["classes"], _roles(record, bench)) if role == "test"}
        assert {superclass_of()[c] for c in test} == {"aquatic_mammals", "insects", "medium_mammals", "people"}
    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", f"{format}-release", "--budget", "2steps", "--json")
    assert code == 0 and json.loads(out)["protocol"] == bench.protocol, err


def _roles(record, bench):
    role_of = {c: role for role, names in record["splits"][bench.protocol].items() for c in names}
    return [role_of[c] for c in record["classes"]]


def _spoil(spoiled, change):
    return lambda part, content: change(content) if part == spoiled else content


def _pickles(root, edit=None, bench=CIFAR_FS):
    write_pickles(root / "in", bench, edit=edit)
    return root / "in"


def _release(root, edit=None):
    write_release(root / "in" / "cifar-100-python", edit)
    return root / "in"


def _truncated(root, file="CIFAR_FS_test.pickle", make=_pickles):
    folder = make(root)
    path = next(folder.rglob(file))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return folder


def _moved(role, to):
    """A class of the ``role`` pickle relabelled as the first class of the ``to`` split."""

    def change(content):
        labels = list(content["labels"])
        first, target = labels[0], fine_names().index(split_classes(CIFAR_FS, to)[0])
        return {**content, "labels": [target if label == first else label for label in labels]}

    return _spoil(role, change)


def _foreign_class(role, to):
    """A class of the ``role`` pickle relabelled as a class the published split puts in ``to`` (no pickle holds)."""

    def change(content):
        labels = list(content["labels"])
        first, target = labels[0], fine_names().index(CIFAR_FS.split()[to][-1])
        return {**content, "labels": [target if label == first else label for label in labels]}

    return _spoil(role, change)


BAD = [
    ("missing key", lambda root: _pickles(root, _spoil("val", without("labels"))), "has no 'labels' key"),
    (
        "channels first",
        lambda root: _pickles(root, _spoil("train", lambda c: {**c, "data": c["data"].transpose(0, 3, 1, 2)})),
        "data is uint8 [48, 3, 32, 32]; MetaOptNet's pickles hold uint8 [N, 32, 32, 3]",
    ),
    (
        "a class in the pickle",
        lambda root: _pickles(root, _spoil("val", lambda c: {**c, "meta": Foreign()})),
        "the pickle names the global pickle_helpers.Foreign; fewshot reads only arrays and plain containers",
    ),
    ("truncated pickle", _truncated, "CIFAR_FS_test.pickle is not a whole pickle of arrays"),
    ("class in two splits", lambda root: _pickles(root, _moved("test", "train")), "is in both train and test"),
    (
        "class of another split",
        lambda root: _pickles(root, _foreign_class("train", "test")),
        f"CIFAR_FS_train.pickle holds class {CIFAR_FS.split()['test'][-1]}, which Bertinetto et al. 2019 put in test",
    ),
    (
        "labels and data of two lengths",
        lambda root: _pickles(root, _spoil("test", lambda c: {**c, "labels": c["labels"][:-1]})),
        "CIFAR_FS_test.pickle: labels holds 23 labels for 24 images",
    ),
    (
        "label out of range",
        lambda root: _pickles(root, _spoil("val", lambda c: {**c, "labels": [100, *c["labels"][1:]]})),
        "labels holds the id 100; CIFAR-100's are 0 to 99",
    ),
    (
        "no test pickle",
        lambda root: (_pickles(root) / "CIFAR_FS_test.pickle").unlink() or root / "in",
        "has no CIFAR_FS_test.pickle",
    ),
    ("nothing to import", lambda root: root, "holds neither CIFAR_FS_{train,val,test}.pickle nor CIFAR-100's python"),
    ("no folder", lambda root: root / "nowhere", "nowhere: give the folder holding CIFAR_FS_{train,val,test}.pickle"),
    (
        "release: missing key",
        lambda root: _release(root, _spoil("test", without(b"coarse_labels"))),
        "test has no 'coarse_labels' key",
    ),
    (
        "release: image rows of another shape",
        lambda root: _release(root, _spoil("train", lambda c: {**c, b"data": c[b"data"].reshape(-1, 3, 32, 32)})),
        "data is uint8 [400, 3, 32, 32]; CIFAR-100's python release holds uint8 [N, 3072]",
    ),
    (
        "release: labels and data of two lengths",
        lambda root: _release(root, _spoil("train", lambda c: {**c, b"fine_labels": c[b"fine_labels"][:-2]})),
        "train: fine_labels holds 398 labels for 400 images",
    ),
    (
        "release: a wrong superclass",
        lambda root: _release(root, _spoil("test", lambda c: {**c, b"coarse_labels": [19] * 200})),
        "not CIFAR-100's superclass of it",
    ),
    (
        "release: other label names",
        lambda root: _release(root, _spoil("meta", lambda c: {**c, "fine_label_names": c["fine_label_names"][::-1]})),
        "meta: fine_label_names are not CIFAR-100's 100 labels (in id order)",
    ),
    (
        "release: truncated",
        lambda root: _truncated(root, "train", _release),
        "cifar-100-python/train is not a whole pickle of arrays",
    ),
    (
        "release: a class in the pickle",
        lambda root: _release(root, _spoil("train", lambda c: {**c, b"extra": Foreign()})),
        "the pickle names the global pickle_helpers.Foreign",
    ),
    (
        "release: no test",
        lambda root: (_release(root) / "cifar-100-python" / "test").unlink() or root / "in",
        "has no test: CIFAR-100's python release (cifar-100-python/) holds train, test, meta",
    ),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_malformed_files_are_one_line_exit_2_and_leave_nothing(tmp_path, cache, capfd, make, message):
    code, out, err = run_main(capfd, "data", "import", "cifar-fs", str(make(tmp_path)))
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not imports_dir().exists() or not any(imports_dir().iterdir()), "nothing written"


def test_fc100_pickles_of_cifar_fs_are_refused(tmp_path, cache, capfd):
    """CIFAR-FS's pickles renamed FC100_*: their classes are not FC100's split."""
    write_pickles(tmp_path / "in", CIFAR_FS)
    for role in ROLES:
        (tmp_path / "in" / f"CIFAR_FS_{role}.pickle").rename(tmp_path / "in" / f"FC100_{role}.pickle")
    code, _, err = run_main(capfd, "data", "import", "fc100", str(tmp_path / "in"))
    assert code == 2 and err.count("\n") == 1 and "which Oreshkin et al. 2018 put in" in err, err
    assert not any(imports_dir().iterdir())


@pytest.mark.parametrize("layout", ["pickles", "release"])
def test_a_pickle_carrying_a_payload_is_refused_and_the_payload_never_runs(tmp_path, cache, capfd, layout):
    marker = tmp_path / "payload-ran"
    if layout == "pickles":
        folder = _pickles(
            tmp_path, _spoil("train", lambda c: {**c, "labels": [Payload(marker), *c["labels"][1:]]}), FC100
        )
    else:
        folder = _release(tmp_path, _spoil("meta", lambda c: {**c, "coarse_label_names": Payload(marker)}))
    code, _, err = run_main(capfd, "data", "import", "fc100", str(folder))
    assert code == 2 and err.count("\n") == 1 and "the pickle names the global posix.system" in err, err
    assert not marker.exists(), "the payload ran"
    assert not imports_dir().exists() or not any(imports_dir().iterdir())
