"""The xlsa17 import on small files in exactly Xian et al.'s format, written here with scipy."""

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.io import savemat

from conftest import REPO, run_main
from fewshot.core.data import ClassImages
from fewshot.core.errors import FewshotError
from fewshot.run import experiment
from fewshot.tasks.xlsa17 import import_xlsa17, imported_path

CLASSES, ATTRIBUTES, DIM, PER_CLASS = 32, 16, 40, 30
TRAIN, VAL, UNSEEN = range(16), range(16, 22), range(22, 32)


def toy_files(folder, seed=0, **changes):
    """Features that are a linear function of the class's attributes plus noise, in a shuffled image order;
    seen classes keep 6 images each for test_seen. Attribute vectors have unit length, as in Xian et al.'s
    ``att``. Returns the arrays as written (indices 1-based)."""
    rng = np.random.default_rng(seed)
    attributes = rng.normal(size=(ATTRIBUTES, CLASSES))
    attributes /= np.linalg.norm(attributes, axis=0, keepdims=True)
    mixing = rng.normal(size=(DIM, ATTRIBUTES))
    labels = rng.permutation(np.repeat(np.arange(CLASSES), PER_CLASS))
    features = mixing @ attributes[:, labels] + 0.05 * rng.normal(size=(DIM, labels.size))
    rank = np.zeros(labels.size, dtype=int)
    for c in range(CLASSES):
        rank[labels == c] = np.arange(PER_CLASS)
    seen = labels < VAL.stop
    where = lambda mask: (np.flatnonzero(mask) + 1).reshape(-1, 1).astype(np.float64)  # noqa: E731
    arrays = {
        "features": features,
        "labels": (labels + 1).reshape(-1, 1).astype(np.float64),
        "att": attributes,
        "trainval_loc": where(seen & (rank >= 6)),
        "test_seen_loc": where(seen & (rank < 6)),
        "test_unseen_loc": where(~seen),
        "train_loc": where((labels < TRAIN.stop) & (rank >= 6)),
        "val_loc": where((labels >= VAL.start) & seen & (rank >= 6)),
    }
    arrays.update(changes)
    split_keys = ("att", "trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")
    savemat(folder / "res101.mat", {k: v for k, v in arrays.items() if k in ("features", "labels") and v is not None})
    savemat(folder / "att_splits.mat", {k: v for k, v in arrays.items() if k in split_keys and v is not None})
    return arrays


def test_the_import_round_trips_features_attributes_and_the_split(tmp_path):
    arrays = toy_files(tmp_path)
    import_xlsa17(tmp_path, "toy")
    bench = experiment.open_benchmark("xlsa17:TOY", "gzsl")
    labels = arrays["labels"].reshape(-1).astype(int) - 1
    # images are sorted by class; each keeps its features
    for original in (0, 17, CLASSES * PER_CLASS - 1):
        row = np.flatnonzero(np.all(np.isclose(bench.data.images.numpy(), arrays["features"][:, original]), 1))
        assert len(row) == 1 and bench.data.labels[row[0]].item() == labels[original]
    assert torch.allclose(bench.describe("attributes"), torch.from_numpy(arrays["att"].T).float())
    assert bench.split("train").classes.tolist() == list(TRAIN) + list(VAL)
    assert bench.split("select").classes.tolist() == list(TRAIN) and bench.split("val").classes.tolist() == list(VAL)
    assert bench.split("test").classes.tolist() == list(range(CLASSES))
    assert int(bench.split("test").image_mask.sum()) == VAL.stop * 6 + len(UNSEEN) * PER_CLASS
    assert experiment.open_benchmark("xlsa17:toy", "zsl").split("test").classes.tolist() == list(UNSEEN)


@pytest.mark.parametrize("learner", ["eszsl", "devise", "conse", "dap"])
def test_learners_recognise_unseen_classes_from_features_linear_in_their_attributes(tmp_path, learner):
    toy_files(tmp_path)
    import_xlsa17(tmp_path, "linear")
    bench = experiment.open_benchmark("xlsa17:LINEAR", "zsl")
    cell = experiment.resolve_cell(bench, None, None, None, None, 0)
    assert (cell.kind, cell.ways, cell.shots) == ("all-classes", len(UNSEEN), 0)
    setup = experiment.make_setup(learner, {}, bench, cell)
    trained = experiment.ensure_trained(setup, experiment.default_budget(setup, None), torch.device("cpu"))
    assert trained.checkpoint is None  # features are given: nothing to pretrain
    result = experiment.evaluate_setup(setup, trained.learner, torch.device("cpu"))
    threshold = {"eszsl": 0.9, "devise": 0.7, "conse": 0.4, "dap": 0.9}[learner]  # chance is 1/10
    assert result.mean > threshold
    assert set(setup.selection["chosen"]) == set(setup.cls.hparam_grid)  # chosen on val_loc, stored with the run
    assert all(setup.hp[k] == v for k, v in setup.selection["chosen"].items())


def test_generalized_scores_on_imported_features(tmp_path):
    toy_files(tmp_path)
    import_xlsa17(tmp_path, "toy")
    bench = experiment.open_benchmark("xlsa17:TOY", "gzsl")
    cell = experiment.resolve_cell(bench, None, None, None, None, 0)
    setup = experiment.make_setup("eszsl", {}, bench, cell)
    learner = experiment.ensure_trained(setup, experiment.default_budget(setup, None), torch.device("cpu")).learner
    scores = experiment.evaluate_setup(setup, learner, torch.device("cpu")).scores
    assert set(scores) >= {"seen", "unseen", "harmonic", "mean"} and scores["mean"] == scores["harmonic"]
    s, u = scores["seen"], scores["unseen"]
    assert s > 0.5 and u > 0.5 and scores["harmonic"] == pytest.approx(2 * s * u / (s + u))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"att": None}, "lacks att"),
        ({"features": np.zeros((40, 959))}, "do not match 960 labels"),
        ({"labels": np.full((960, 1), 33.0)}, "labels must be class numbers 1..32"),
        ({"val_loc": np.array([[0.0], [3.0]])}, "val_loc must list image numbers 1..960"),
        ({"test_unseen_loc": np.array([[961.0]])}, "test_unseen_loc must list image numbers 1..960"),
        ({"features": np.full((40, 960), np.nan)}, "NaN"),
        ({"labels": np.zeros((0, 1)), "features": np.zeros((40, 0))}, "res101.mat: features is empty"),
        ({"att": np.where(np.eye(16, 32) > 0, np.nan, 0.5)}, "att_splits.mat: att holds NaN or infinite values"),
        ({"att": np.where(np.eye(16, 32) > 0, np.inf, 0.5)}, "att_splits.mat: att holds NaN or infinite values"),
        ({"att": np.array(["stripes", "spots"])}, "att_splits.mat: att holds <U7 values, not real numbers"),
        ({"val_loc": np.array([[np.nan], [3.0]])}, "val_loc holds NaN or infinite values"),
        ({"features": np.full((40, 960), 1e300)}, "features overflow float32"),
        ({"att": np.ones((16, 33))}, "no image is labelled with class 33 of the 33 att describes"),
    ],
    ids=[
        "no att",
        "features",
        "labels",
        "val_loc",
        "test_unseen_loc",
        "NaN features",
        "empty",
        "NaN att",
        "inf att",
        "text att",
        "NaN location",
        "overflow",
        "unlabelled class",
    ],
)
def test_bad_files_are_refused_with_one_line_and_nothing_written(tmp_path, changes, message):
    toy_files(tmp_path, **changes)
    with pytest.raises(FewshotError, match=message):
        import_xlsa17(tmp_path, "bad")
    assert not imported_path("bad").exists()


def test_overlapping_seen_and_unseen_classes_are_refused(tmp_path):
    arrays = toy_files(tmp_path)
    toy_files(tmp_path, test_unseen_loc=np.concatenate([arrays["test_unseen_loc"], arrays["trainval_loc"][:1]]))
    with pytest.raises(FewshotError, match="both in trainval_loc and test_unseen_loc"):
        import_xlsa17(tmp_path, "bad")


def test_the_command_line_reports_a_missing_or_unreadable_file_in_one_line(tmp_path):
    (tmp_path / "res101.mat").write_bytes(b"not a MATLAB file")
    for folder, expected in ((tmp_path / "absent", "res101.mat is missing"), (tmp_path, "not a readable MATLAB file")):
        run = subprocess.run(
            [sys.executable, "-m", "fewshot", "data", "import", "xlsa17", str(folder), "--name", "X"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and expected in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not imported_path("X").exists()


def test_nan_attributes_on_the_command_line_are_one_line_exit_2_and_nothing_written(tmp_path, capfd):
    attributes = toy_files(tmp_path)["att"].copy()
    attributes[0, 3] = np.nan
    toy_files(tmp_path, att=attributes)
    code, _, err = run_main(capfd, "data", "import", "xlsa17", str(tmp_path), "--name", "nanatt")
    assert code == 2 and err.count("\n") == 1 and "att holds NaN or infinite values" in err, err
    assert not imported_path("nanatt").exists()


def test_an_earlier_import_holding_nan_attributes_is_refused_in_one_line(tmp_path):
    toy_files(tmp_path)
    import_xlsa17(tmp_path, "older")
    path = imported_path("older")
    data = ClassImages.load(path)
    attributes = data.extras["attributes"].clone()
    attributes[0, 0] = float("nan")
    dataclasses.replace(data, extras={**data.extras, "attributes": attributes}).save(path)
    with pytest.raises(FewshotError, match=r"is damaged \(its attributes hold NaN or infinite values\): import"):
        experiment.open_benchmark("xlsa17:OLDER", "zsl")


def test_an_unimported_name_says_how_to_import_it():
    with pytest.raises(FewshotError, match="fewshot data import xlsa17 DIR --name NOPE"):
        experiment.open_benchmark("xlsa17:NOPE", "zsl")


def test_a_file_that_crashes_scipys_reader_is_one_line_and_nothing_written(tmp_path, capfd):
    """Found by tests/fuzz: this att_splits.mat (a toy one with byte 801 changed from 0 to 0xb8)
    makes scipy 1.17's loadmat die of a segmentation fault, which took the command line down with it."""
    toy_files(tmp_path)
    shutil.copy(REPO / "tests" / "data" / "att_splits-crashes-scipy.mat", tmp_path / "att_splits.mat")
    code, _, err = run_main(capfd, "data", "import", "xlsa17", str(tmp_path), "--name", "crash")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {tmp_path / 'att_splits.mat'} is not a readable MATLAB file ("), err
    assert not imported_path("crash").exists()
