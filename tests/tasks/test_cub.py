"""`fewshot data import cub`: a small CUB_200_2011 release in its exact format (the 200 real class folders, two or
three tiny JPEGs each, the release's text files), as the extracted folder and as the .tgz read in place, imported,
compared pixel for pixel with Chen et al.'s test transform done by torchvision, evaluated on; malformed variants
refused in one line with nothing left in the cache."""

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from conftest import run_main
from fewshot.core import registry
from fewshot.core.dataset import imports_dir
from fewshot.tasks.cub import SPLIT_FILE, CUBImport

ROLES = ("train", "val", "test")
SPLIT = json.loads(SPLIT_FILE.read_text())
FOLDERS = sorted(c for role in ROLES for c in SPLIT[role])
EVAL = tuple("--learner protonet --ways 5 --shots 1 --queries 1 --episodes 3 --hp train_queries=1".split())
# Chen et al.'s test transform as their data/datamgr.py composes it (Scale is Resize), before ToTensor
CHEN_TEST = transforms.Compose([transforms.Resize([int(84 * 1.15), int(84 * 1.15)]), transforms.CenterCrop(84)])


@pytest.fixture(autouse=True)
def cub_importer():
    """The format `cub` for the command line: from its entry point once fewshot is reinstalled, registered in
    this process until then (an editable install made before cub existed has no such entry point)."""
    if "cub" in registry.names("importer"):
        yield
        return
    registry.register("importer", "cub", CUBImport)
    yield
    registry.unregister("importer", "cub")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FEWSHOT_RESULTS", str(tmp_path / "results.sqlite"))
    return tmp_path / "cache"


def pixels(seed, shape):
    """Smooth colour gradients with a little noise: like photographs, they survive JPEG recognisably."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.stack([x * rng.uniform(2, 6), y * rng.uniform(2, 6), (x + y) * rng.uniform(1, 3)], -1)
    return ((base + rng.uniform(0, 255, 3) + rng.normal(0, 4, shape)) % 256).astype(np.uint8)


def write_release(root):
    """CUB_200_2011/ under ``root`` as the release lays it out; returns it and each class's expected pixels
    [n, 84, 84, 3] in image-id order (computed from the written files by torchvision)."""
    folder = root / "CUB_200_2011"
    lines = {"images": [], "labels": [], "boxes": [], "split": []}
    expected = {}
    image_id = 0
    for class_id, name in enumerate(FOLDERS, start=1):
        (folder / "images" / name).mkdir(parents=True)
        species = name.split(".", 1)[1]
        decoded = []
        for k in range(3 if class_id % 7 == 0 else 2):
            image_id += 1
            file = folder / "images" / name / f"{species}_{k + 1:04d}_{700 + 13 * image_id}.jpg"
            shape = (30, 40, 3) if image_id % 3 else (45, 28, 3)  # landscape and portrait: resized unevenly
            image = Image.fromarray(pixels(image_id, shape))
            if image_id == 5:
                image = image.convert("L")  # the release has a few grey JPEGs
            image.save(file, quality=92)
            with Image.open(file) as written:
                decoded.append(np.asarray(CHEN_TEST(written.convert("RGB"))))
            relative = file.relative_to(folder / "images")
            lines["images"].append(f"{image_id} {relative.as_posix()}")
            lines["labels"].append(f"{image_id} {class_id}")
            lines["boxes"].append(f"{image_id} 3.0 2.0 {shape[1] - 6}.0 {shape[0] - 5}.0")
            lines["split"].append(f"{image_id} {image_id % 2}")
        expected[name] = np.stack(decoded)
    (folder / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(FOLDERS, start=1)))
    for key, file in [
        ("images", "images.txt"),
        ("labels", "image_class_labels.txt"),
        ("boxes", "bounding_boxes.txt"),
        ("split", "train_test_split.txt"),
    ]:
        (folder / file).write_text("\n".join(lines[key]) + "\n")
    (folder / "README").write_text("The Caltech-UCSD Birds-200-2011 Dataset\n")
    return folder, expected


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("release"))


def copied(release, root):
    return Path(shutil.copytree(release[0], root / "CUB_200_2011"))


def write_tgz(folder, tgz, extra=()):
    """``folder`` packed as the release's CUB_200_2011.tgz (with attributes.txt beside it, as there), plus any
    ``extra`` members (TarInfo, bytes or None)."""
    with tarfile.open(tgz, "w:gz") as tar:
        attributes = b"1 has_bill_shape::curved_(up_or_down)\n"
        info = tarfile.TarInfo("attributes.txt")
        info.size = len(attributes)
        tar.addfile(info, io.BytesIO(attributes))
        tar.add(folder, arcname="CUB_200_2011")
        for info, content in extra:
            tar.addfile(info, None if content is None else io.BytesIO(content))
    return tgz


def check_import(bench, expected):
    data = bench.data
    assert data.images.shape == (sum(len(v) for v in expected.values()), 3, 84, 84)
    names = [c.name for c in data.classes]
    assert names == FOLDERS
    for row, name in enumerate(names):
        got = data.images[data.labels == row].permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, expected[name]), f"the pixels of {name} differ from Chen et al.'s transform"
    splits = {role: [names[c] for c in bench.split(role).classes.tolist()] for role in ROLES}
    assert {role: sorted(s) for role, s in splits.items()} == {role: sorted(SPLIT[role]) for role in ROLES}
    assert [len(splits[role]) for role in ROLES] == [100, 50, 50]
    assert not (set(splits["train"]) & set(splits["val"]) or set(splits["train"]) & set(splits["test"]))
    assert not set(splits["val"]) & set(splits["test"])


def test_the_shipped_split_is_chens_rule_over_the_sorted_folders():
    assert (
        len(FOLDERS) == 200 and FOLDERS[0] == "001.Black_footed_Albatross" and FOLDERS[-1] == "200.Common_Yellowthroat"
    )
    assert [int(name[:3]) for name in FOLDERS] == list(range(1, 201))
    rule = {"train": lambda i: i % 2 == 0, "val": lambda i: i % 4 == 1, "test": lambda i: i % 4 == 3}
    for role in ROLES:
        assert SPLIT[role] == [name for i, name in enumerate(FOLDERS) if rule[role](i)]


def test_the_folder_and_the_tgz_import_the_same_pixels_and_split_and_evaluate(tmp_path, cache, capfd, release):
    folder, expected = release
    code, out, err = run_main(capfd, "data", "import", "cub", str(folder))
    assert code == 0, err
    assert out.startswith("imported cub: 428 images of 200 classes (100 train, 50 val, 50 test) at 84x84x3 from folder")
    dataset = registry.dataset("cub")
    assert dataset.default_protocol == "chen" and "Chen, Liu, Kira, Wang and Huang 2019" in dataset.citation
    check_import(dataset.benchmark("chen", tmp_path), expected)
    record = json.loads((cache / "imports" / "cub.json").read_text())
    texts = ("classes.txt", "images.txt", "image_class_labels.txt")
    md5s = {file: hashlib.md5((folder / file).read_bytes()).hexdigest() for file in texts}
    assert {k: v for k, v in record["files_md5"].items() if k != "images"} == md5s
    assert len(record["files_md5"]["images"]) == 64 and record["layout"] == "folder"

    tgz = write_tgz(folder, tmp_path / "CUB_200_2011.tgz")
    code, out, err = run_main(capfd, "data", "import", "cub", str(tgz), "--name", "cub-tgz")
    assert code == 0, err
    assert "428 images of 200 classes (100 train, 50 val, 50 test) at 84x84x3 from tgz" in out
    check_import(registry.dataset("cub-tgz").benchmark("chen", tmp_path), expected)
    from_tgz = json.loads((cache / "imports" / "cub-tgz.json").read_text())
    assert from_tgz["files_md5"] == {**record["files_md5"], tgz.name: hashlib.md5(tgz.read_bytes()).hexdigest()}
    assert from_tgz["key"] == record["key"], "one release, one key, whichever form it came in"
    assert from_tgz["official_release"] is False and from_tgz["source"] == str(tgz.resolve())

    code, out, err = run_main(capfd, "data", "import", "cub", str(folder.parent), "--name", "cub-parent")
    assert code == 0 and "from folder " + str(folder) in out, err  # the folder holding CUB_200_2011/ is as good

    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", "cub-tgz", "--budget", "2steps", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["dataset"] == "cub-tgz" and result["protocol"] == "chen" and result["episodes"] == 3
    code, out, _ = run_main(capfd, "datasets")
    assert "cub-tgz  CUB-200-2011 (tgz " in out and "428 images of 200 classes (100/50/50), 84x84 RGB" in out
    code, _, err = run_main(capfd, "data", "import", "cub", str(tgz), "--name", "cub-tgz")
    assert code == 2 and "cub-tgz is already imported" in err


def _edit(file, change):
    def make(release, root):
        folder = copied(release, root)
        (folder / file).write_text(change((folder / file).read_text()))
        return folder

    return make


def _remove(relative):
    def make(release, root):
        folder = copied(release, root)
        (folder / relative).unlink()
        return folder

    return make


def _tgz(make_folder=copied, extra=()):
    def make(release, root):
        folder = make_folder(release, root / "tree")
        return write_tgz(folder, root / "CUB_200_2011.tgz", extra)

    return make


def _truncated(release, root):
    tgz = _tgz()(release, root)
    whole = tgz.read_bytes()
    tgz.write_bytes(whole[: len(whole) * 2 // 3])
    return tgz


def _member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    content = b"x" if kind == tarfile.REGTYPE else None
    info.size = len(content or b"")
    return info, content


def _garbled(release, root):
    folder = copied(release, root)
    victim = sorted((folder / "images" / FOLDERS[42]).iterdir())[1]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return folder


FIRST_IMAGE = "001.Black_footed_Albatross/Black_footed_Albatross_0001_713.jpg"
BAD = [
    ("no images.txt", _remove("images.txt"), "has no images.txt: give the extracted CUB_200_2011/ folder"),
    ("no images.txt in the tgz", _tgz(_remove("images.txt")), "holds no CUB_200_2011/images.txt"),
    (
        "a missing image",
        _remove(f"images/{FIRST_IMAGE}"),
        f"images.txt, line 1: images/{FIRST_IMAGE} does not exist",
    ),
    (
        "a missing image in the tgz",
        _tgz(_remove(f"images/{FIRST_IMAGE}")),
        f"images.txt, line 1 names images/{FIRST_IMAGE}, which the archive does not hold",
    ),
    ("truncated tgz", _truncated, "CUB_200_2011.tgz is not a whole tar archive"),
    (
        "member with ..",
        _tgz(extra=[_member("CUB_200_2011/../../evil.txt")]),
        "'CUB_200_2011/../../evil.txt' has an unsafe",
    ),
    ("absolute member", _tgz(extra=[_member("/etc/cron.d/evil")]), "member '/etc/cron.d/evil' has an unsafe name"),
    (
        "symlink member",
        _tgz(extra=[_member("CUB_200_2011/images/link.jpg", tarfile.SYMTYPE, "/etc/passwd")]),
        "member CUB_200_2011/images/link.jpg is a link (to '/etc/passwd')",
    ),
    (
        "hard link member",
        _tgz(extra=[_member("CUB_200_2011/hard.txt", tarfile.LNKTYPE, "CUB_200_2011/README")]),
        "member CUB_200_2011/hard.txt is a link",
    ),
    (
        "device member",
        _tgz(extra=[_member("CUB_200_2011/dev", tarfile.CHRTYPE)]),
        "member CUB_200_2011/dev is a device, fifo or other special file",
    ),
    (
        "a class not in the split",
        _edit("classes.txt", lambda text: text.replace("200 200.Common_Yellowthroat", "200 200.Dodo")),
        "classes.txt, line 200: class 200.Dodo is not one of the 200 of Chen et al.'s split",
    ),
    (
        "a class missing",
        _edit("classes.txt", lambda text: text.replace("200 200.Common_Yellowthroat\n", "")),
        "classes.txt lacks 200.Common_Yellowthroat",
    ),
    (
        "a malformed line",
        _edit("images.txt", lambda text: text.replace("\n3 ", "\nthree ", 1)),
        "images.txt, line 3: 'three 002.Laysan_Albatross",
    ),
    (
        "an image outside its class's folder",
        _edit("image_class_labels.txt", lambda text: "1 2\n" + text.split("\n", 1)[1]),
        "image_class_labels.txt, line 1: image 1 (001.Black_footed_Albatross/",
    ),
    ("an image that does not decode", _garbled, "is not a readable image"),
    ("an image that does not decode in the tgz", _tgz(_garbled), "is not a readable image"),
    ("nothing there", lambda release, root: root / "nowhere", "nowhere: give the extracted CUB_200_2011/ folder or"),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_malformed_releases_are_one_line_exit_2_and_leave_nothing(tmp_path, cache, capfd, release, make, message):
    code, out, err = run_main(capfd, "data", "import", "cub", str(make(release, tmp_path)))
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not imports_dir().exists() or not any(imports_dir().iterdir()), "nothing written"
