"""`fewshot data import tiered-imagenet`: small files in the release's exact formats (python 2's pickles of PNGs
and of labels, as Ren et al. shared them; python 3's; the npz Ren's decompress writes) imported, compared pixel
for pixel, evaluated on; every malformed variant refused in one line, leaving nothing."""

import hashlib
import io
import json
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import check_split_import, damage_member, refused_import, run_main
from fewshot.core import dataset as dataset_module
from fewshot.core import registry, safe_pickle
from fewshot.core.data import mapped_images_path
from fewshot.core.dataset import imports_dir
from fewshot.tasks.tiered_imagenet import FORMAT, TieredImageNetImport
from pickle_helpers import Foreign, Payload

ROLES = ("train", "val", "test")
# 12 classes of 8 images in 5 categories, as 351 / 97 / 160 classes in 20 / 6 / 8 categories in the release
CATEGORIES = {"train": ["carnivore", "instrument"], "val": ["fish"], "test": ["garment", "vessel"]}
SHARES = {"train": 6, "val": 3, "test": 3}
PER_CLASS = 8
# protonet trains on natural images with 30-way episodes of 15 queries (Snell et al.): fewer, for 8 images a class
EVAL = (
    *("--learner", "protonet", "--ways", "3", "--shots", "1", "--queries", "2", "--episodes", "4"),
    *("--hp", "train_ways=3", "--hp", "train_queries=2"),
)


@pytest.fixture(autouse=True)
def importer():
    """The importer as its entry point registers it; where fewshot was installed before it existed (an
    editable install of another checkout), registered in this process."""
    if FORMAT in registry.names("importer"):
        yield
        return
    registry.register("importer", FORMAT, TieredImageNetImport)
    yield
    registry.unregister("importer", FORMAT)


def class_names(role):
    first = sum(SHARES[r] for r in ROLES[: ROLES.index(role)])
    return [f"synset {first + i} of {role}" for i in range(SHARES[role])]


def pixels(seed):
    return np.random.default_rng(seed).integers(0, 256, (84, 84, 3), dtype=np.uint8)


def png(image, mode="RGB"):
    out = io.BytesIO()
    Image.fromarray(image).convert(mode).save(out, format="PNG")
    return out.getvalue()


# Python 2's cPickle at protocol 2, as the release was written: str for names, keys and array buffers (read
# back as latin-1), every object memoised (BINPUT) and a repeated global fetched back from the memo (BINGET).
class Py2Pickler:
    def __init__(self):
        self.out, self.memo = [b"\x80\x02"], {}

    def dumps(self, obj):
        self.put(obj)
        return b"".join([*self.out, b"."])

    def memoise(self):
        self.out.append(
            b"q" + bytes([len(self.memo) % 256]) if len(self.memo) < 256 else b"r" + struct.pack("<I", len(self.memo))
        )
        self.memo[object()] = len(self.memo)

    def global_(self, module, name):
        key = (module, name)
        if key in self.memo:
            at = self.memo[key]
            self.out.append(b"h" + bytes([at]) if at < 256 else b"j" + struct.pack("<I", at))
            return
        self.out.append(f"c{module}\n{name}\n".encode())
        self.memo[key] = len(self.memo)
        self.out.append(
            b"q" + bytes([self.memo[key]]) if self.memo[key] < 256 else b"r" + struct.pack("<I", self.memo[key])
        )

    def put(self, obj):
        if isinstance(obj, dict):
            self.out.append(b"}")
            self.memoise()
            self.out.append(b"(")
            for key, value in obj.items():
                self.put(key)
                self.put(value)
            self.out.append(b"u")
        elif isinstance(obj, list):
            self.out.append(b"]")
            self.memoise()
            for start in range(0, len(obj), 1000):  # cPickle's batches
                self.out.append(b"(")
                for item in obj[start : start + 1000]:
                    self.put(item)
                self.out.append(b"e")
        elif isinstance(obj, (str, bytes)):
            raw = obj.encode("latin1") if isinstance(obj, str) else obj
            self.out.append(
                b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<I", len(raw)) + raw
            )
            self.memoise()
        elif isinstance(obj, int):
            self.out.append(b"J" + struct.pack("<i", obj))
        elif isinstance(obj, np.ndarray):
            self.global_("numpy.core.multiarray", "_reconstruct")
            self.global_("numpy", "ndarray")
            self.out.append(b"K\x00\x85U\x01b\x87R")
            self.memoise()
            self.out.append(b"(K\x01")
            for n in obj.shape:
                self.put(n)
            self.out.append({1: b"\x85", 2: b"\x86"}[obj.ndim])
            self.global_("numpy", "dtype")
            self.out.append(b"U\x02" + obj.dtype.str[1:].encode() + b"K\x00K\x01\x87R")
            self.memoise()
            self.out.append(
                b"(K\x03U\x01" + obj.dtype.str[:1].encode() + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            )
            self.out.append(b"\x89")
            self.put(obj.tobytes())
            self.out.append(b"tb")
        else:
            raise TypeError(type(obj))


WRITERS = {
    "python 2": lambda obj: Py2Pickler().dumps(obj),
    "protocol 2": lambda obj: pickle.dumps(obj, protocol=2),
    "protocol 4": lambda obj: pickle.dumps(obj, protocol=4),
}


def split_content(role, shuffled):
    """A split's images [N, 84, 84, 3] RGB and labels dict, classes interleaved where ``shuffled``."""
    names, categories = class_names(role), CATEGORIES[role]
    specific = np.repeat(np.arange(len(names)), PER_CLASS)
    if shuffled:
        specific = np.random.default_rng(len(names)).permutation(specific)
    seen = np.zeros(len(names), dtype=int)
    images = []
    for label in specific:
        images.append(pixels(1000 * ROLES.index(role) + 100 * label + seen[label]))
        seen[label] += 1
    labels = {
        "label_specific": specific.astype(np.int32),
        "label_general": (specific * len(categories) // len(names)).astype(np.int32),
        "label_specific_str": names,
        "label_general_str": categories,
    }
    return np.stack(images), labels


def write_release(folder, writer="python 2", layout="png", edit=None, compressed=False):
    """The three splits' files; returns each class's images [PER_CLASS, 84, 84, 3] RGB in file order.
    ``edit(role, images, pngs, labels)`` may spoil a split's content (returns them)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    dumps = WRITERS[writer]
    for role in ROLES:
        images, labels = split_content(role, shuffled=role == "train")
        for c, name in enumerate(class_names(role)):
            expected[name] = images[labels["label_specific"] == c]
        # cv2.imencode's arrays, [n, 1] uint8, in the release; python 3's bytes in a re-pickled copy
        pngs = [np.frombuffer(png(image), np.uint8).reshape(-1, 1) for image in images]
        if writer == "protocol 4":
            pngs = [p.tobytes() for p in pngs]
        if edit is not None:
            images, pngs, labels = edit(role, images, pngs, labels)
        (folder / f"{role}_labels.pkl").write_bytes(dumps(labels))
        if layout == "png":
            (folder / f"{role}_images_png.pkl").write_bytes(dumps(pngs))
        else:  # as Ren's decompress writes it: cv2.imdecode's BGR
            bgr = images[..., ::-1] if images.ndim == 4 else images
            (np.savez_compressed if compressed else np.savez)(folder / f"{role}_images.npz", images=bgr)
    return expected


def check_import(bench, expected):
    check_split_import(bench, expected, class_names, 12 * PER_CLASS)
    data = bench.data
    groups = {c.name: c.group for c in data.classes}
    assert groups["synset 0 of train"] == "carnivore" and groups["synset 5 of train"] == "instrument"
    assert groups["synset 11 of test"] == "vessel"


@pytest.mark.parametrize("writer", WRITERS)
def test_the_png_pickles_import_with_their_pixels_split_and_categories(tmp_path, import_cache, capfd, writer):
    source = tmp_path / "tiered"
    expected = write_release(source, writer)
    code, out, err = run_main(capfd, "data", "import", "tiered-imagenet", str(source))
    assert code == 0, err
    assert out.startswith("imported tiered-imagenet: 96 images of 12 classes (6 train, 3 val, 3 test) at 84x84x3")
    dataset = registry.dataset("tiered-imagenet")
    assert dataset.default_protocol == "ren" and "Semi-Supervised Few-Shot" in dataset.citation
    check_import(dataset.benchmark("ren", tmp_path), expected)
    record = json.loads((import_cache / "imports" / "tiered-imagenet.json").read_text())
    assert record["files_md5"] == {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in source.iterdir()}
    assert record["layout"] == "png" and record["categories"] == CATEGORIES
    code, out, _ = run_main(capfd, "datasets")
    assert "tiered-imagenet  tieredImageNet (png in " in out and "12 classes (6/3/3) in categories (2/1/2)" in out


def test_an_import_evaluates_a_protonet_episode_through_the_command_line(tmp_path, import_cache, capfd):
    write_release(tmp_path / "tiered")
    assert run_main(capfd, "data", "import", "tiered-imagenet", str(tmp_path / "tiered"), "--name", "tiered")[0] == 0
    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", "tiered", "--budget", "3steps", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["dataset"] == "tiered" and result["protocol"] == "ren" and result["episodes"] == 4


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
def test_the_npz_variant_imports_the_same_rgb_pixels(tmp_path, import_cache, capfd, compressed):
    source = tmp_path / "npz"
    expected = write_release(source, layout="npz", compressed=compressed)
    code, out, err = run_main(capfd, "data", "import", "tiered-imagenet", str(source), "--name", "tiered-npz")
    assert code == 0, err
    assert "96 images of 12 classes (6 train, 3 val, 3 test) at 84x84x3 from npz" in out
    check_import(registry.dataset("tiered-npz").benchmark("ren", tmp_path), expected)
    record = json.loads((import_cache / "imports" / "tiered-npz.json").read_text())
    assert record["files_md5"] == {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in source.iterdir()}
    assert record["channel_order"] == "BGR in the npz, stored RGB"


def test_where_both_layouts_are_present_the_png_pickles_are_read(tmp_path, import_cache, capfd):
    source = tmp_path / "both"
    expected = write_release(source, layout="npz")
    write_release(source)
    code, out, err = run_main(capfd, "data", "import", "tiered-imagenet", str(source))
    assert code == 0 and "from png" in out, err
    check_import(registry.dataset("tiered-imagenet").benchmark("ren", tmp_path), expected)


def test_a_large_import_is_memory_mapped(tmp_path, import_cache, capfd, monkeypatch):
    monkeypatch.setattr(dataset_module, "MAPPED_ABOVE", 0)  # every import counts as large
    expected = write_release(tmp_path / "tiered")
    assert run_main(capfd, "data", "import", "tiered-imagenet", str(tmp_path / "tiered"))[0] == 0
    record = json.loads((import_cache / "imports" / "tiered-imagenet.json").read_text())
    images_file = mapped_images_path(import_cache / "imports" / record["arrays"])
    assert images_file.is_file()
    bench = registry.dataset("tiered-imagenet").benchmark("ren", tmp_path)
    maps = Path("/proc/self/maps")
    assert not maps.exists() or str(images_file.resolve()) in maps.read_text(), "opened memory-mapped, not read"
    check_import(bench, expected)


def test_a_pickle_of_images_is_streamed_not_held(tmp_path):
    """2,000 items of 20 kB (40 MB): read through while holding about one batch of cPickle's 1,000."""
    items = [np.full((20_000, 1), i % 256, np.uint8) for i in range(2000)]
    path = tmp_path / "big.pkl"
    path.write_bytes(Py2Pickler().dumps(items))
    del items
    seen = []
    tracemalloc.start()
    try:
        count, md5 = safe_pickle.stream_list(path, lambda i, item: seen.append(int(item[0, 0])), encoding="latin1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000 and seen == [i % 256 for i in range(2000)]
    assert md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert peak < 25_000_000, f"{peak:,} bytes held while streaming a 40 MB pickle"


def _spoil(role_spoiled, change):
    def edit(role, images, pngs, labels):
        return change(images, pngs, labels) if role == role_spoiled else (images, pngs, labels)

    return edit


def _labels(**changes):
    return lambda images, pngs, labels: (images, pngs, {**labels, **changes})


def _pngs(change):
    return lambda images, pngs, labels: (images, change(pngs), labels)


def _without(key):
    return lambda images, pngs, labels: (images, pngs, {k: v for k, v in labels.items() if k != key})


def _release(root, edit=None, layout="png", writer="python 2"):
    write_release(root / "in", writer, layout, edit)
    return root / "in"


def _truncated(file, layout="png"):
    def make(root):
        folder = _release(root, layout=layout)
        whole = (folder / file).read_bytes()
        (folder / file).write_bytes(whole[: len(whole) // 2])
        return folder

    return make


def _removed(file):
    def make(root):
        folder = _release(root)
        (folder / file).unlink()
        return folder

    return make


def _shared_class(images, pngs, labels):
    """The test split's first class named as the train split's first, in the same category."""
    names, categories = labels["label_specific_str"], labels["label_general_str"]
    return (
        images,
        pngs,
        {
            **labels,
            "label_specific_str": ["synset 0 of train", *names[1:]],
            "label_general_str": ["carnivore", *categories[1:]],
        },
    )


def _one_more(labels):
    return {
        **labels,
        "label_specific": np.append(labels["label_specific"], 0),
        "label_general": np.append(labels["label_general"], 0),
    }


def _two_categories(images, pngs, labels):
    general = labels["label_general"].copy()
    general[np.flatnonzero(labels["label_specific"] == 0)[0]] = 1
    return images, pngs, {**labels, "label_general": general}


BAD = [
    (
        "missing key",
        lambda root: _release(root, _spoil("val", _without("label_general"))),
        "has no 'label_general' key: tieredImageNet's labels pickle holds label_specific, label_general",
    ),
    (
        "wrong image shape (png)",
        lambda root: _release(root, _spoil("test", _pngs(lambda p: [*p[:3], png(pixels(0)[:80]), *p[4:]]))),
        "test_images_png.pkl, image 3 is 84x80: tieredImageNet's images are 84x84",
    ),
    (
        "wrong image shape (npz)",
        lambda root: _release(root, _spoil("val", lambda i, p, labels: (i.transpose(0, 3, 1, 2), p, labels)), "npz"),
        "val_images.npz: images is uint8 [24, 3, 84, 84]; tieredImageNet's npz holds uint8 [N, 84, 84, 3]",
    ),
    (
        "a png that does not decode",
        lambda root: _release(root, _spoil("train", _pngs(lambda p: [*p[:5], b"\x89PNG\r\n\x1a\n broken", *p[6:]]))),
        "train_images_png.pkl, image 5 is not a readable image",
    ),
    (
        "an item that is no png",
        lambda root: _release(root, _spoil("val", _pngs(lambda p: [*p[:1], 7, *p[2:]]))),
        "val_images_png.pkl, image 1 is of type int, not a PNG's bytes",
    ),
    (
        "a class in the labels pickle",
        lambda root: _release(root, _spoil("val", _labels(meta=Foreign())), writer="protocol 4"),
        "val_labels.pkl: the pickle names the global pickle_helpers.Foreign; fewshot reads only arrays",
    ),
    (
        "a class in the png pickle",
        lambda root: _release(root, _spoil("test", _pngs(lambda p: [*p[:2], Foreign()])), writer="protocol 4"),
        "test_images_png.pkl: the pickle names the global pickle_helpers.Foreign",
    ),
    ("truncated png pickle", _truncated("val_images_png.pkl"), "val_images_png.pkl is not a whole pickle of arrays"),
    ("truncated labels pickle", _truncated("test_labels.pkl"), "test_labels.pkl is not a whole pickle of arrays"),
    ("truncated npz", _truncated("train_images.npz", "npz"), "train_images.npz is not a whole npz (BadZipFile"),
    (
        "class in two splits",
        lambda root: _release(root, _spoil("test", _shared_class)),
        "class synset 0 of train is in both train and test",
    ),
    (
        "fewer images than labels (png)",
        lambda root: _release(root, _spoil("test", _pngs(lambda p: p[:-1]))),
        "test_images_png.pkl holds 23 images where test_labels.pkl labels 24",
    ),
    (
        "more images than labels (png)",
        lambda root: _release(root, _spoil("val", _pngs(lambda p: [*p, p[0]]))),
        "val_images_png.pkl holds more than the 24 images val_labels.pkl labels",
    ),
    (
        "more labels than images (npz)",
        lambda root: _release(root, _spoil("train", lambda i, p, labels: (i, p, _one_more(labels))), "npz"),
        "train_images.npz holds 48 images where its labels pickle labels 49",
    ),
    (
        "labels of two lengths",
        lambda root: _release(root, _spoil("val", _labels(label_general=np.zeros(3, np.int32)))),
        "val_labels.pkl: label_specific has 24 labels but label_general 3",
    ),
    (
        "a label past the names",
        lambda root: _release(root, _spoil("val", _labels(label_specific_str=["a", "b"]))),
        "val_labels.pkl: label_specific holds 2, past the 2 names of label_specific_str",
    ),
    (
        "a class of two categories",
        lambda root: _release(root, _spoil("train", _two_categories)),
        "train_labels.pkl: class synset 0 of train has images of two categories in label_general",
    ),
    (
        "names that are no names",
        lambda root: _release(root, _spoil("test", _labels(label_general_str=[1, 2]))),
        "test_labels.pkl: label_general_str must be a non-empty list of names",
    ),
    (
        "npz without images",
        lambda root: _release(root, _spoil("val", lambda i, p, labels: (np.zeros(3), p, labels)), "npz"),
        "val_images.npz: images is float64 [3]",
    ),
    ("no labels", _removed("val_labels.pkl"), "has no val_labels.pkl: the split's labels are missing"),
    ("a split's images missing", _removed("test_images_png.pkl"), "has no test_images_png.pkl: the test split's"),
    ("nothing to import", lambda root: root, "holds neither {train,val,test}_images_png.pkl nor"),
    ("no folder", lambda root: root / "nowhere", "nowhere: give the folder holding {train,val,test}_labels.pkl"),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_malformed_files_are_one_line_exit_2_and_leave_nothing(tmp_path, import_cache, capfd, make, message):
    refused_import(capfd, message, "tiered-imagenet", str(make(tmp_path)))


def test_an_npz_member_other_than_images_is_named(tmp_path, import_cache, capfd):
    folder = _release(tmp_path, layout="npz")
    images = np.load(folder / "val_images.npz")["images"]
    np.savez(folder / "val_images.npz", data=images)
    code, _, err = run_main(capfd, "data", "import", "tiered-imagenet", str(folder))
    assert code == 2 and "val_images.npz has no 'images' array (it holds data)" in err, err


def test_a_damaged_npz_fails_its_crc(tmp_path, import_cache, capfd):
    folder = _release(tmp_path, layout="npz")
    damage_member(folder / "test_images.npz", "images.npy")
    code, _, err = run_main(capfd, "data", "import", "tiered-imagenet", str(folder))
    assert code == 2 and err.count("\n") == 1 and "test_images.npz: images fails its CRC-32 check" in err, err
    assert not imports_dir().exists() or not any(imports_dir().iterdir())


@pytest.mark.parametrize("file", ["labels", "images_png"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_carrying_a_payload_is_refused_and_the_payload_never_runs(
    tmp_path, import_cache, capfd, protocol, file
):
    marker = tmp_path / "payload-ran"
    folder = _release(tmp_path)
    content = safe_pickle.load(folder / f"train_{file}.pkl", encoding="latin1")
    content = {**content, "meta": Payload(marker)} if file == "labels" else [*content[:3], Payload(marker)]
    (folder / f"train_{file}.pkl").write_bytes(pickle.dumps(content, protocol=protocol))
    code, _, err = run_main(capfd, "data", "import", "tiered-imagenet", str(folder))
    assert code == 2 and err.count("\n") == 1 and "the pickle names the global posix.system" in err, err
    assert not marker.exists(), "the payload ran"
    assert not imports_dir().exists() or not any(imports_dir().iterdir())


def test_grey_pngs_become_rgb_and_shared_names_are_told_apart(tmp_path, import_cache, capfd):
    """cv2.imdecode(item, 1) makes a grey PNG RGB, as the import does; ImageNet's two cranes (a bird, a
    machine) keep one name each, with their category."""

    def edit(role, images, pngs, labels):
        if role == "val":
            pngs = [png(images[0], "L"), *pngs[1:]]
            labels = {**labels, "label_specific_str": ["crane", *labels["label_specific_str"][1:]]}
        if role == "test":
            labels = {**labels, "label_specific_str": ["crane", *labels["label_specific_str"][1:]]}
        return images, pngs, labels

    write_release(tmp_path / "in", edit=edit)
    code, _, err = run_main(capfd, "data", "import", "tiered-imagenet", str(tmp_path / "in"))
    assert code == 0, err
    data = registry.dataset("tiered-imagenet").benchmark("ren", tmp_path).data
    names = [c.name for c in data.classes]
    assert "crane (fish)" in names and "crane (garment)" in names
    first = data.images[data.labels == names.index("crane (fish)")][0]
    grey = np.asarray(Image.fromarray(split_content("val", False)[0][0]).convert("L"))
    assert all(np.array_equal(first[c].numpy(), grey) for c in range(3))
