"""`fewshot data import mini-imagenet`: small files in both of the release's exact formats (the cache pickles and
Ravi's CSVs beside JPEGs) imported, compared pixel for pixel, evaluated on; every malformed variant refused."""

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import check_split_import, refused_import, run_main
from fewshot.core import dataset as dataset_module
from fewshot.core import registry
from fewshot.core.data import mapped_images_path
from fewshot.core.dataset import imports_dir
from fewshot.core.errors import FewshotError
from pickle_helpers import Foreign, Payload, without

ROLES = ("train", "val", "test")
SHARES = {"train": 6, "val": 3, "test": 3}  # 12 classes, as 64 / 16 / 20 in the real files
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


def wnids(role):
    first = sum(SHARES[r] for r in ROLES[: ROLES.index(role)])
    return [f"n{1530000 + 17 * (first + i):08d}" for i in range(SHARES[role])]


def pixels(seed, shape=(84, 84, 3)):
    """Smooth colour gradients with a little noise: like photographs, they survive JPEG recognisably."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.stack([x * rng.uniform(0.5, 3), y * rng.uniform(0.5, 3), (x + y) * rng.uniform(0.2, 1.5)], -1)
    return ((base + rng.uniform(0, 255, 3) + rng.normal(0, 4, shape)) % 256).astype(np.uint8)


def write_pickles(folder, val_name="val", protocol=4, edit=None):
    """The three cache pickles; returns each class's images [n, 84, 84, 3]. ``edit(role, content)`` may spoil one."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for role in ROLES:
        names = wnids(role)
        images = np.stack([pixels(1000 * c + i) for c in range(len(names)) for i in range(PER_CLASS)])
        order = np.random.default_rng(len(names)).permutation(len(images))  # classes interleaved, as in the release
        shuffled = np.empty_like(images)
        shuffled[order] = images
        class_dict = {name: order[c * PER_CLASS : (c + 1) * PER_CLASS].tolist() for c, name in enumerate(names)}
        expected.update({name: images[c * PER_CLASS : (c + 1) * PER_CLASS] for c, name in enumerate(names)})
        content = {"image_data": shuffled, "class_dict": class_dict}
        if edit is not None:
            content = edit(role, content)
        file = folder / f"mini-imagenet-cache-{val_name if role == 'val' else role}.pkl"
        file.write_bytes(pickle.dumps(content, protocol=protocol))
    return expected


def write_csvs(folder, rows_of=None):
    """Ravi's train/val/test.csv and images/: JPEGs at 84x84, a class of PNGs in a wnid sub-folder, and a few
    larger JPEGs that are resized. Returns each class's expected pixels [n, 84, 84, 3], in file-name order."""
    (folder / "images").mkdir(parents=True)
    expected = {}
    for role in ROLES:
        lines = ["filename,label"]
        for c, name in enumerate(wnids(role)):
            decoded = []
            for i in range(PER_CLASS):
                filename = f"{name}{i + 1:08d}.{'png' if (role, c) == ('val', 1) else 'jpg'}"
                big = (role, c, i) in {("train", 0, 3), ("test", 2, 0)}
                image = Image.fromarray(pixels(7 * c + i, (120, 100, 3) if big else (84, 84, 3)))
                where = folder / "images" / (name if filename.endswith("png") else "") / filename
                where.parent.mkdir(exist_ok=True)
                image.save(where, quality=90) if filename.endswith("jpg") else image.save(where)
                with Image.open(where) as written:
                    rgb = written.convert("RGB")
                    decoded.append(np.asarray(rgb.resize((84, 84), Image.Resampling.LANCZOS) if big else rgb))
                lines.append(f"{filename},{name}")
            expected[name] = np.stack(decoded)
        if rows_of is not None:
            lines = rows_of(role, lines)
        (folder / f"{role}.csv").write_text("\n".join(lines) + "\n")
    return expected


def check_import(bench, expected):
    check_split_import(bench, expected, wnids, 12 * PER_CLASS)


@pytest.mark.parametrize("val_name, protocol", [("val", 4), ("validation", 2)])
def test_the_cache_pickles_import_with_their_pixels_and_split_and_evaluate(
    tmp_path, import_cache, capfd, val_name, protocol
):
    source = tmp_path / "mini"
    expected = write_pickles(source, val_name, protocol)
    code, out, err = run_main(capfd, "data", "import", "mini-imagenet", str(source))
    assert code == 0, err
    assert out.startswith("imported mini-imagenet: 96 images of 12 classes (6 train, 3 val, 3 test) at 84x84x3")
    dataset = registry.dataset("mini-imagenet")
    assert dataset.default_protocol == "ravi" and "Ravi and Larochelle" in dataset.citation
    check_import(dataset.benchmark("ravi", tmp_path), expected)
    record = json.loads((import_cache / "imports" / "mini-imagenet.json").read_text())
    pickles = sorted(source.iterdir())
    assert record["files_md5"] == {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in pickles}
    assert record["layout"] == "pickles" and record["source"] == str(source.resolve())
    train = np.concatenate([expected[name] for name in wnids("train")]).astype(np.float64) / 255
    stats = record["normalisation"]
    assert np.allclose(stats["mean"], train.mean((0, 1, 2)), atol=1e-6), "the training images' channel means"
    assert np.allclose(stats["std"], train.std((0, 1, 2)), atol=1e-6) and "protocol ravi" in stats["over"]

    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", "mini-imagenet", "--budget", "3steps", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["dataset"] == "mini-imagenet" and result["protocol"] == "ravi" and result["episodes"] == 4
    code, out, _ = run_main(capfd, "datasets")
    assert "mini-imagenet  mini-ImageNet (pickles in " in out and "96 images of 12 classes (6/3/3), 84x84 RGB" in out


def test_ravis_csvs_and_jpegs_import_resized_as_their_users_do_and_evaluate(tmp_path, import_cache, capfd):
    source = tmp_path / "ravi"
    expected = write_csvs(source)
    code, out, err = run_main(capfd, "data", "import", "mini-imagenet", str(source), "--name", "mini-csv")
    assert code == 0, err
    assert "96 images of 12 classes (6 train, 3 val, 3 test) at 84x84x3 from csv" in out
    check_import(registry.dataset("mini-csv").benchmark("ravi", tmp_path), expected)
    record = json.loads((import_cache / "imports" / "mini-csv.json").read_text())
    md5s = {f"{role}.csv": hashlib.md5((source / f"{role}.csv").read_bytes()).hexdigest() for role in ROLES}
    assert {k: v for k, v in record["files_md5"].items() if k != "images"} == md5s
    assert len(record["files_md5"]["images"]) == 64
    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", "mini-csv", "--budget", "2steps", "--json")
    assert code == 0 and json.loads(out)["protocol"] == "ravi", err
    code, _, err = run_main(capfd, "data", "import", "mini-imagenet", str(source), "--name", "mini-csv")
    assert code == 2 and "mini-csv is already imported" in err and "--force" in err
    assert run_main(capfd, "data", "import", "mini-imagenet", str(source), "--name", "mini-csv", "--force")[0] == 0


def _spoil(role_spoiled, change):
    def edit(role, content):
        return change(content) if role == role_spoiled else content

    return edit


def _with(**changes):
    return lambda content: {**content, **changes}


def _pickles(root, edit=None, val_name="val"):
    write_pickles(root / "in", val_name, edit=edit)
    return root / "in"


def _truncated(root):
    folder = _pickles(root)
    whole = (folder / "mini-imagenet-cache-test.pkl").read_bytes()
    (folder / "mini-imagenet-cache-test.pkl").write_bytes(whole[: len(whole) // 2])
    return folder


def _both_val_names(root):
    folder = _pickles(root)
    (folder / "mini-imagenet-cache-validation.pkl").write_bytes((folder / "mini-imagenet-cache-val.pkl").read_bytes())
    return folder


def _no_test(root):
    folder = _pickles(root)
    (folder / "mini-imagenet-cache-test.pkl").unlink()
    return folder


def _csvs(root, rows_of=None):
    write_csvs(root / "in", rows_of)
    return root / "in"


def _shared_class(content):
    class_dict = dict(content["class_dict"])
    class_dict[wnids("train")[0]] = class_dict.pop(wnids("test")[0])
    return {**content, "class_dict": class_dict}


BAD = [
    ("missing key", lambda root: _pickles(root, _spoil("val", without("class_dict"))), "has no 'class_dict' key"),
    (
        "channels first",
        lambda root: _pickles(
            root, _spoil("train", lambda c: {**c, "image_data": c["image_data"].transpose(0, 3, 1, 2)})
        ),
        "image_data is uint8 [48, 3, 84, 84]; mini-ImageNet's cache holds uint8 [N, 84, 84, 3]",
    ),
    (
        "float pixels",
        lambda root: _pickles(root, _spoil("test", lambda c: {**c, "image_data": c["image_data"] / 255})),
        "image_data is float64 [24, 84, 84, 3]",
    ),
    (
        "class in two splits (pickles)",
        lambda root: _pickles(root, _spoil("test", _shared_class)),
        "is in both train and test",
    ),
    (
        "index outside the images",
        lambda root: _pickles(root, _spoil("val", lambda c: {**c, "class_dict": {**c["class_dict"], "n9": [0, 99]}})),
        "names an image outside image_data's 24",
    ),
    ("truncated pickle", _truncated, "mini-imagenet-cache-test.pkl is not a whole pickle of arrays"),
    (
        "a class in the pickle",
        lambda root: _pickles(root, _spoil("val", _with(meta=Foreign()))),
        "the pickle names the global pickle_helpers.Foreign; fewshot reads only arrays and plain containers",
    ),
    (
        "both val names",
        _both_val_names,
        "holds both mini-imagenet-cache-val.pkl and mini-imagenet-cache-validation.pkl",
    ),
    ("no test split", _no_test, "has no mini-imagenet-cache-test.pkl: the test split is missing"),
    ("nothing to import", lambda root: root, "holds neither mini-imagenet-cache-{train,val,test}.pkl nor train.csv"),
    (
        "class in two splits (csv)",
        lambda root: _csvs(
            root,
            lambda role, lines: [
                line.replace(*wnids("val")[:1], *wnids("train")[:1])
                if role == "val" and line.endswith(wnids("val")[0])
                else line
                for line in lines
            ],
        ),
        f"class {wnids('train')[0]} is in both train and val",
    ),
    (
        "csv row naming a missing image",
        lambda root: _csvs(
            root, lambda role, lines: lines if role != "test" else [*lines, f"n0999999900000001.jpg,{wnids(role)[0]}"]
        ),
        "test.csv, line 26: images/n0999999900000001.jpg does not exist",
    ),
    (
        "csv header",
        lambda root: _csvs(root, lambda role, lines: ["path,label", *lines[1:]]),
        "train.csv has no filename column",
    ),
    ("no folder", lambda root: root / "nowhere", "nowhere: give the folder holding mini-imagenet-cache-*.pkl"),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_malformed_files_are_one_line_exit_2_and_leave_nothing(tmp_path, import_cache, capfd, make, message):
    refused_import(capfd, message, "mini-imagenet", str(make(tmp_path)))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_carrying_a_payload_is_refused_and_the_payload_never_runs(tmp_path, import_cache, capfd, protocol):
    marker = tmp_path / "payload-ran"
    folder = tmp_path / "in"
    write_pickles(folder)
    content = pickle.loads((folder / "mini-imagenet-cache-train.pkl").read_bytes())
    content["class_dict"] = {**content["class_dict"], "n0": Payload(marker)}
    (folder / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps(content, protocol=protocol))
    code, _, err = run_main(capfd, "data", "import", "mini-imagenet", str(folder))
    assert code == 2 and err.count("\n") == 1 and "the pickle names the global posix.system" in err, err
    assert not marker.exists(), "the payload ran"
    assert not imports_dir().exists() or not any(imports_dir().iterdir())


def test_large_imports_are_opened_memory_mapped_and_a_damaged_images_file_is_one_line(
    tmp_path, import_cache, capfd, monkeypatch
):
    monkeypatch.setattr(dataset_module, "MAPPED_ABOVE", 0)  # every import counts as large
    source = tmp_path / "mini"
    expected = write_pickles(source)
    assert run_main(capfd, "data", "import", "mini-imagenet", str(source))[0] == 0
    record = json.loads((import_cache / "imports" / "mini-imagenet.json").read_text())
    arrays = import_cache / "imports" / record["arrays"]
    images_file = mapped_images_path(arrays)
    assert images_file.name == arrays.name.removesuffix(".npz") + ".images.npy" and images_file.is_file()
    with np.load(arrays) as z:
        assert "images" not in z.files, "the images are not also in the .npz"
    bench = registry.dataset("mini-imagenet").benchmark("ravi", tmp_path)
    maps = Path("/proc/self/maps")  # Linux's list of this process's mappings
    assert not maps.exists() or str(images_file.resolve()) in maps.read_text(), "opened memory-mapped, not read"
    check_import(bench, expected)
    code, out, err = run_main(capfd, "eval", *EVAL, "--dataset", "mini-imagenet", "--budget", "2steps", "--json")
    assert code == 0 and json.loads(out)["episodes"] == 4, err

    whole = images_file.read_bytes()
    for damaged, message in [
        (whole[:-100], f"holds {len(whole) - 100:,} bytes where its header declares {len(whole):,}"),
        (whole + b"\0", f"holds {len(whole) + 1:,} bytes where its header declares {len(whole):,}"),
        (whole.replace(b"'|u1'", b"'<i2'", 1), "declares int16 [96, 3, 84, 84], not uint8"),
        # the same bytes in another shape: the import record tells
        (
            whole.replace(b"(96, 3, 84, 84)", b"(96, 84, 84, 3)", 1),
            "does not match its arrays (images [96, 84, 84, 3])",
        ),
    ]:
        images_file.write_bytes(damaged)
        with pytest.raises(FewshotError) as failed:
            registry.dataset("mini-imagenet").benchmark("ravi", tmp_path)
        assert message in str(failed.value) and "import it again with --force" in str(failed.value)
    images_file.unlink()
    with pytest.raises(FewshotError, match=r"images file .* is missing"):
        registry.dataset("mini-imagenet").benchmark("ravi", tmp_path)

    write_pickles(source, protocol=2)  # other bytes, another key: the old arrays and images go
    assert run_main(capfd, "data", "import", "mini-imagenet", str(source), "--force")[0] == 0
    left = sorted(p.name for p in (import_cache / "imports").iterdir())
    new = json.loads((import_cache / "imports" / "mini-imagenet.json").read_text())["arrays"]
    assert new != arrays.name and left == sorted(
        ["mini-imagenet.json", new, mapped_images_path(import_cache / new).name]
    )


def test_a_format_without_a_name_of_its_own_needs_one(tmp_path, import_cache, capfd):
    code, _, err = run_main(capfd, "data", "import", "folder", str(tmp_path))
    assert code == 2 and "folder imports need a name: fewshot data import folder PATH --name NAME" in err
    assert err.count("\n") == 1


def test_an_unwritable_cache_or_an_unreadable_pickle_is_one_line(tmp_path, import_cache, capfd, monkeypatch):
    source = tmp_path / "mini"
    write_pickles(source)
    (source / "mini-imagenet-cache-val.pkl").unlink()
    (source / "mini-imagenet-cache-val.pkl").mkdir()  # a folder where a file should be: reading it fails
    code, _, err = run_main(capfd, "data", "import", "mini-imagenet", str(source))
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err and "mini-imagenet-cache-val.pkl" in err, err
    write_pickles(source / "again")
    monkeypatch.setenv("FEWSHOT_CACHE", str(source / "mini-imagenet-cache-train.pkl"))  # a file, not a folder
    code, _, err = run_main(capfd, "data", "import", "mini-imagenet", str(source / "again"), "--force")
    assert code == 2 and err.count("\n") == 1 and "set FEWSHOT_CACHE to a writable folder" in err, err


@pytest.fixture(scope="module")
def imported_mini(tmp_path_factory):
    """One small mini-ImageNet import (12 classes x 8 images at 84x84x3) in a cache of its own."""
    root = tmp_path_factory.mktemp("natural")
    saved = os.environ["FEWSHOT_CACHE"]
    os.environ["FEWSHOT_CACHE"] = str(root / "cache")
    write_pickles(root / "mini")
    assert registry.importer("mini-imagenet").import_files("mini-imagenet", root / "mini", {})
    yield root
    os.environ["FEWSHOT_CACHE"] = saved


@pytest.mark.parametrize(
    "learner, backbone, network",
    [
        ("protonet", "conv4", "Conv4"),
        ("protonet", "resnet12", "ResNet12"),
        ("finetune", "auto", "Conv4"),
        ("finetune", "resnet12", "ResNet12"),
        ("maml", "auto", "MAMLConv4"),
        ("maml", "resnet12", "MAMLResNet12"),
    ],
)
def test_learners_train_and_evaluate_on_84px_rgb_with_either_backbone(
    imported_mini, capfd, monkeypatch, learner, backbone, network
):
    """Two training steps and three episodes end to end at 84x84x3; the run records the network it trained."""
    monkeypatch.setattr("fewshot.protocols.episodic.VALIDATION_EPISODES", 2)  # not 100: this is no accuracy check
    small = {  # the least training that still runs every part (ResNet-12 at 84 px is slow on a CPU)
        "protonet": ["train_ways=3", "train_queries=2"],
        "finetune": ["batch_size=6", "ft_epochs=1"],
        "maml": ["train_queries=1", "meta_batch=1", "inner_steps=1", "test_steps=1", "first_order=true"],
    }
    hps = [f"backbone={backbone}", *small[learner]]
    code, out, err = run_main(
        capfd,
        "eval",
        "--learner",
        learner,
        "--dataset",
        "mini-imagenet",
        "--ways",
        "3",
        "--shots",
        "1",
        "--queries",
        "2",
        "--episodes",
        "3",
        "--budget",
        "2steps",
        "--json",
        *[word for hp in hps for word in ("--hp", hp)],
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["backbone"] == network and 0 <= result["mean"] <= 100 and result["train_steps"] == 2


def test_natural_images_take_the_papers_miniimagenet_settings(imported_mini):
    from fewshot.baselines.maml import MAML
    from fewshot.baselines.protonet import ProtoNet
    from fewshot.core.learner import TaskSpec

    natural = TaskSpec("mini-imagenet", "ravi", (3, 84, 84), 5, 1, 15, 64)
    maml = MAML(natural, dict(MAML.hparams))
    assert maml.settings["inner_lr"] == 0.01 and maml.settings["inner_steps"] == 5 and maml.settings["test_steps"] == 10
    assert maml.settings["train_queries"] == 15 and maml.net.body[0].out_channels == 32
    omniglot = MAML(TaskSpec("omniglot", "vinyals", (1, 28, 28), 5, 1, 15, 1200), dict(MAML.hparams))
    assert omniglot.settings["inner_lr"] == 0.4 and omniglot.settings["train_queries"] == 1
    assert ProtoNet(natural, dict(ProtoNet.hparams)).train_batches().ways == 30
    five_shot = TaskSpec("mini-imagenet", "ravi", (3, 84, 84), 5, 5, 15, 64)
    assert ProtoNet(five_shot, dict(ProtoNet.hparams)).train_batches().ways == 20
    assert ProtoNet(five_shot, dict(ProtoNet.hparams)).train_batches().queries == 15
