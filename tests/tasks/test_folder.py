"""`fewshot data import folder`: small folders of drawn PNGs imported, checked, evaluated on; every bad input refused."""

import csv
import json

import pytest
import torch
from PIL import Image, ImageDraw

from conftest import damage_member, png_header, run_cli, run_main
from fewshot.core import registry
from fewshot.core.dataset import Dataset, imports_dir
from fewshot.core.errors import FewshotError
from fewshot.tasks import folder as folder_format

SHAPES = ("bar", "circle", "column", "cross", "diagonal", "frame", "square", "top", "triangle", "x")
PER_CLASS = 6


def draw(shape: str, variant: int, colour=255, mode="L", width=20, height=20) -> Image.Image:
    """One simple shape, moved a pixel or two per variant so that a class's images differ."""
    image = Image.new(mode, (width, height), 0)
    pen = ImageDraw.Draw(image)
    d = variant % 3

    def cross():
        pen.line((9 + d, 2, 9 + d, 17), fill=colour, width=2)
        pen.line((2, 9, 17, 9), fill=colour, width=2)

    def x():
        pen.line((2, 2, 17, 17), fill=colour, width=2)
        pen.line((2, 17, 17, 2), fill=colour, width=2)

    boxes = {
        "bar": lambda: pen.rectangle((2, 8 + d, 17, 11 + d), fill=colour),
        "circle": lambda: pen.ellipse((3 + d, 3, 15 + d, 15), fill=colour),
        "column": lambda: pen.rectangle((8 + d, 2, 11 + d, 17), fill=colour),
        "cross": cross,
        "diagonal": lambda: pen.line((2 + d, 2, 17, 17 - d), fill=colour, width=2),
        "frame": lambda: pen.rectangle((3 + d, 3, 16 - d, 16), outline=colour, width=2),
        "square": lambda: pen.rectangle((5 + d, 5, 13 + d, 13), fill=colour),
        "top": lambda: pen.rectangle(
            (0, 0, width - 1, height // 2 - 1), fill=colour
        ),  # the upper half, for orientation
        "triangle": lambda: pen.polygon([(10, 2 + d), (2, 17), (17, 17)], fill=colour),
        "x": x,
    }
    boxes[shape]()
    return image


def make_folder(root, shapes=SHAPES, per_class=PER_CLASS, **style):
    for shape in shapes:
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            draw(shape, i, **style).save(root / shape / f"{i}.png")
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of this test alone (processes it starts inherit it), so that what an import leaves is visible."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_folder_becomes_a_dataset_that_evaluates(tmp_path, cache, capfd):
    source = make_folder(tmp_path / "shapes")
    code, out, err = run_main(
        capfd, "data", "import", "folder", str(source), "--name", "shapes", "--size", "16", "--channels", "1"
    )
    assert code == 0, err
    assert out.startswith("imported shapes: 60 images of 10 classes at 16x16x1")
    bench = registry.dataset("shapes").benchmark("classes", tmp_path)
    data = bench.data
    assert data.images.shape == (60, 1, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [c for c in range(10) for _ in range(PER_CLASS)]
    assert [c.name for c in data.classes] == sorted(SHAPES)
    top = data.images[data.labels == SHAPES.index("top")].float()
    assert top[:, :, :7].min() > 200 and top[:, :, 9:].max() < 50, "rows stay rows: the upper half is bright"
    splits = {role: set(bench.split(role).classes.tolist()) for role in ("train", "val", "test")}
    assert [len(splits[r]) for r in ("train", "val", "test")] == [6, 2, 2]
    assert set.union(*splits.values()) == set(range(10)) and sum(map(len, splits.values())) == 10
    record = json.loads((cache / "imports" / "shapes.json").read_text())
    assert record["source"] == str(source.resolve()) and record["format"] == "folder" and record["images"] == 60
    assert record["size"] == 16 and record["classes"] == sorted(SHAPES) and len(record["files_sha256"]) == 64
    assert {role: set(names) for role, names in record["splits"]["classes"].items()} == {
        role: {sorted(SHAPES)[c] for c in rows} for role, rows in splits.items()
    }

    command = "eval --learner protonet --dataset shapes --ways 2 --shots 1 --queries 2 --episodes 5 --budget 5steps"
    done = run_cli(*command.split(), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dataset"] == "shapes" and result["protocol"] == "classes" and result["episodes"] == 5
    listed = run_cli("datasets").stdout
    assert f"shapes  imported from {source.resolve()}: 60 images of 10 classes, 16x16 grey" in listed
    assert "\nfolder  DIR holds a sub-folder of images per class" in listed.split("import formats")[1]
    imported = registry.dataset("shapes")
    assert isinstance(imported, Dataset) and imported.citation and imported.default_protocol in imported.protocols
    fetched = run_cli("data", "fetch", "shapes")
    assert fetched.returncode == 2 and "shapes cannot be downloaded" in fetched.stderr


def test_colour_images_keep_their_channels_and_are_cropped_not_squashed(tmp_path, cache, capfd):
    source = make_folder(tmp_path / "red", SHAPES[:3], colour=(255, 0, 0), mode="RGB")
    wide = source / "wide"
    wide.mkdir()
    for i in range(2):  # 40x20, bright only in its left quarter: the centre crop leaves it out
        image = Image.new("RGB", (40, 20), 0)
        ImageDraw.Draw(image).rectangle((0, 0, 9, 19), fill=(255, 255, 255))
        image.save(wide / f"{i}.png")
    code, _, err = run_main(capfd, "data", "import", "folder", str(source), "--name", "red", "--size", "12")
    assert code == 0, err
    data = registry.dataset("red").benchmark("classes", tmp_path).data
    assert data.images.shape == (20, 3, 12, 12)
    drawn = data.images[data.labels != 3]
    assert drawn[:, 0].max() == 255 and drawn[:, 1:].max() == 0, "red stays in the first channel"
    # squashed, the left quarter would be three bright columns; cropped, only the filter's edge reaches in
    assert data.images[data.labels == 3].max() < 64, "the left quarter of a wide image is cropped away"


def test_a_csv_with_a_split_column_gives_the_split_protocol(tmp_path, cache, capfd):
    make_folder(tmp_path / "images")
    roles = {"bar": "val", "circle": "test", "x": "test", "cross": "val"}
    table = tmp_path / "lists" / "all.csv"
    table.parent.mkdir()
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for shape in SHAPES:
            for i in range(PER_CLASS):
                writer.writerow([f"../images/{shape}/{i}.png", shape, roles.get(shape, "train")])
    code, _, err = run_main(capfd, "data", "import", "folder", "--csv", str(table), "--name", "listed", "--size", "8")
    assert code == 0, err
    source = registry.dataset("listed")
    assert source.protocols == ("split",) and source.default_protocol == "split"
    bench = source.benchmark("split", tmp_path)
    names = [c.name for c in bench.data.classes]
    assert {
        role: sorted(names[c] for c in bench.split(role).classes.tolist()) for role in ("train", "val", "test")
    } == {"train": sorted(set(SHAPES) - set(roles)), "val": ["bar", "cross"], "test": ["circle", "x"]}
    assert bench.data.images.shape == (60, 3, 8, 8)


def test_a_reimport_replaces_only_with_force(tmp_path, cache, capfd):
    source = make_folder(tmp_path / "shapes", SHAPES[:4])
    assert run_main(capfd, "data", "import", "folder", str(source), "--name", "again", "--size", "8")[0] == 0
    before = sorted(p.name for p in (cache / "imports").iterdir())
    code, _, err = run_main(capfd, "data", "import", "folder", str(source), "--name", "again", "--size", "8")
    assert code == 2 and "already imported" in err and "--force" in err
    assert sorted(p.name for p in (cache / "imports").iterdir()) == before
    code, _, err = run_main(
        capfd, "data", "import", "folder", str(source), "--name", "again", "--size", "10", "--force"
    )
    assert code == 0, err
    assert len(list((cache / "imports").glob("again-*.npz"))) == 1, "the replaced arrays are removed"
    assert registry.dataset("again").benchmark("classes", tmp_path).data.images.shape[-1] == 10


def _one_class(root):
    return make_folder(root / "in", SHAPES[:1])


def _a_lonely_image(root):
    folder = make_folder(root / "in", SHAPES[:3])
    for extra in list((folder / "circle").iterdir())[1:]:
        extra.unlink()
    return folder


def _a_text_file(root):
    folder = make_folder(root / "in", SHAPES[:3])
    (folder / "bar" / "notes.txt").write_text("not an image")
    return folder


def _a_damaged_png(root):
    folder = make_folder(root / "in", SHAPES[:3])
    raw = (folder / "bar" / "2.png").read_bytes()
    (folder / "bar" / "2.png").write_bytes(raw[:40])
    return folder


def _with_second_bar(root, raw: bytes | None):
    """A folder whose bar/2.png holds ``raw``, or (None) is a link to a file that does not exist."""
    folder = make_folder(root / "in", SHAPES[:3])
    (folder / "bar" / "2.png").unlink()
    if raw is None:
        (folder / "bar" / "2.png").symlink_to(root / "nowhere.png")
    else:
        (folder / "bar" / "2.png").write_bytes(raw)
    return folder


def _a_csv(root, header, rows):
    make_folder(root / "in", SHAPES[:3])
    table = root / "list.csv"
    table.write_text("\n".join([header, *rows]) + "\n")
    return table


BAD = [
    ("one class", lambda root: ["folder", str(_one_class(root))], "has 1 class: splitting classes"),
    ("one image", lambda root: ["folder", str(_a_lonely_image(root))], "class circle of"),
    ("text file", lambda root: ["folder", str(_a_text_file(root))], "notes.txt is not an image"),
    ("damaged", lambda root: ["folder", str(_a_damaged_png(root))], "2.png is not a readable image"),
    ("missing folder", lambda root: ["folder", str(root / "nowhere")], "nowhere is not a folder"),
    ("empty file", lambda root: ["folder", str(_with_second_bar(root, b""))], "2.png is not a readable image"),
    ("zero size", lambda root: ["folder", str(_with_second_bar(root, png_header(0, 0)))], "2.png is not a readable"),
    (
        "bomb header",
        lambda root: ["folder", str(_with_second_bar(root, png_header(20000, 20000)))],
        "2.png is refused as a possible decompression bomb",
    ),
    ("unreadable", lambda root: ["folder", str(_with_second_bar(root, None))], "cannot read"),
    (
        "no label column",
        lambda root: ["folder", "--csv", str(_a_csv(root, "path,class", ["in/bar/0.png,bar"]))],
        "has no label column",
    ),
    (
        "missing file",
        lambda root: ["folder", "--csv", str(_a_csv(root, "path,label", ["in/bar/9.png,bar"]))],
        "bar/9.png does not exist",
    ),
    (
        "class in two splits",
        lambda root: [
            "folder",
            "--csv",
            str(
                _a_csv(
                    root,
                    "path,label,split",
                    [
                        "in/bar/0.png,bar,train",
                        "in/bar/1.png,bar,test",
                        "in/circle/0.png,circle,test",
                        "in/circle/1.png,circle,test",
                    ],
                )
            ),
        ],
        "class bar is in both train and test",
    ),
    (
        "small size",
        lambda root: ["folder", str(make_folder(root / "in", SHAPES[:3])), "--size", "4"],
        "--size 4: images must be 8 to 1024 pixels on a side",
    ),
    (
        "huge size",  # found by the fuzz suite: decoding at it would allocate terabytes first
        lambda root: ["folder", str(make_folder(root / "in", SHAPES[:3])), "--size", "1000000"],
        "--size 1000000: images must be 8 to 1024 pixels on a side",
    ),
    (
        "registered name",
        lambda root: ["folder", str(make_folder(root / "in", SHAPES[:3])), "--name", "glyphs"],
        "a registered dataset has that name",
    ),
    ("no source", lambda root: ["folder"], "give either a folder of class sub-folders or --csv FILE"),
    ("xlsa17 takes no size", lambda root: ["xlsa17", str(root), "--size", "20"], "xlsa17 imports take no --size"),
    (
        "unknown format",
        lambda root: ["tarball", str(root)],
        "cannot import 'tarball': the importable formats are cifar-fs, cub, fc100, folder, mini-imagenet, tiered",
    ),
]


@pytest.mark.parametrize("args, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, cache, capfd, args, message):
    argv = ["data", "import", *args(tmp_path)]
    if "--name" not in argv:
        argv += ["--name", "bad"]
    code, out, err = run_main(capfd, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not imports_dir().exists() or not any(imports_dir().iterdir()), "nothing written"


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, cache, capfd, monkeypatch):
    pillow_limit = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(folder_format, "MAX_PIXELS", 399)  # our 20x20 drawings have 400
    code, _, err = run_main(
        capfd, "data", "import", "folder", str(make_folder(tmp_path / "in", SHAPES[:3])), "--name", "b"
    )
    assert code == 2 and "0.png is refused as a possible decompression bomb" in err and err.count("\n") == 1
    assert not imports_dir().exists() or not any(imports_dir().iterdir())
    assert Image.MAX_IMAGE_PIXELS == pillow_limit, "Pillow's own limit is restored after an import"


def test_the_class_split_is_seeded_and_keeps_at_least_one_class_per_role():
    for n in (3, 4, 10, 25, 100):
        classes = [f"c{i:03d}" for i in range(n)]
        split = folder_format.class_split(classes)
        assert split == folder_format.class_split(list(classes)), "the same classes, the same split"
        sizes = [len(split[r]) for r in ("train", "val", "test")]
        assert min(sizes) >= 1 and sum(sizes) == n and sorted(c for role in split.values() for c in role) == classes
    hundred = folder_format.class_split([f"c{i:03d}" for i in range(100)])
    assert [len(hundred[r]) for r in ("train", "val", "test")] == [64, 16, 20]
    assert hundred["test"] != [f"c{i:03d}" for i in range(80, 100)], "shuffled, not the last classes by name"


def test_a_damaged_import_record_says_so_and_force_replaces_it(tmp_path, cache, capfd):
    source = make_folder(tmp_path / "shapes", SHAPES[:3])
    assert run_main(capfd, "data", "import", "folder", str(source), "--name", "torn", "--size", "8")[0] == 0
    (cache / "imports" / "torn.json").write_text('{"name": "torn", "form')
    code, _, err = run_main(capfd, "data", "fetch", "torn")
    assert code == 2 and "torn.json is damaged" in err and "--force" in err and err.count("\n") == 1
    code, _, err = run_main(capfd, "data", "import", "folder", str(source), "--name", "torn", "--size", "8")
    assert code == 2 and "is damaged" in err
    code, out, _ = run_main(capfd, "datasets")
    assert code == 0 and "torn  unreadable: " in out and "\nglyphs  " in out, "the other datasets are still listed"
    assert run_main(capfd, "data", "import", "folder", str(source), "--name", "torn", "--size", "8", "--force")[0] == 0
    assert registry.dataset("torn").benchmark("classes", tmp_path).data.images.shape == (18, 3, 8, 8)


def test_damaged_import_arrays_or_a_record_that_does_not_match_them_are_one_line(tmp_path, cache, capfd):
    source = make_folder(tmp_path / "shapes", SHAPES[:3])
    assert run_main(capfd, "data", "import", "folder", str(source), "--name", "kept", "--size", "8")[0] == 0
    record_file = cache / "imports" / "kept.json"
    record = json.loads(record_file.read_text())
    arrays = cache / "imports" / record["arrays"]
    pristine = arrays.read_bytes()
    damage_member(arrays, "images.npy", size=1)
    with pytest.raises(FewshotError, match=r"are missing or damaged \(.*CRC-32.*\): import it again with --force"):
        registry.dataset("kept").benchmark("classes", tmp_path)
    arrays.write_bytes(pristine)
    record["splits"]["classes"]["test"] = ["no-such-class"]
    record_file.write_text(json.dumps(record))
    with pytest.raises(FewshotError, match=r"does not match its arrays .*import it again with --force"):
        registry.dataset("kept").benchmark("classes", tmp_path)
