import ast
import copy
import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from fewshot.core.data import Split
from fewshot.leaderboard.studies.common import new_network, train_network
from fewshot.leaderboard.studies.freeze import labelled_images
from fewshot.leaderboard.studies.transfer import held_out_masks


def test_frozen_blocks_keep_their_weights_and_statistics_while_the_rest_trains(glyphs):
    classes = glyphs.split("train").classes[:20].numpy()
    train_mask, test_mask = held_out_masks(glyphs.data, classes, 5, 0)
    assert not bool((train_mask & test_mask).any())
    assert int(test_mask.sum()) == 5 * len(classes)
    net = new_network(glyphs, len(classes), 0)
    before = copy.deepcopy(net.backbone)
    train_network(net, glyphs.data, Split.of(classes, image_mask=train_mask), 5, 0, glyphs.network, frozen_blocks=2)
    for i, (block, old) in enumerate(zip(net.backbone.blocks, before.blocks)):
        same = all(torch.equal(a, b) for a, b in zip(block.state_dict().values(), old.state_dict().values()))
        assert same == (i < 2), i


def test_the_transfer_study_writes_four_curves_and_the_base_line(tmp_path):
    done = run_cli("study", "transfer", "--dataset", "glyphs", "--steps", "3", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "transfer-glyphs.csv") as f:
        rows = list(csv.DictReader(f))
    variants = {(int(r["n"]), r["variant"]) for r in rows}
    assert variants == {(n, v) for n in range(5) for v in ("baseB", "BnB", "BnB+", "AnB", "AnB+")}
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert (tmp_path / "transfer-glyphs.png").stat().st_size > 10_000


def test_the_freeze_study_compares_three_ways_of_using_labelled_target_images(tmp_path, data_root):
    shift = ("--dataset", "digits", "--source", "mnist", "--target", "usps")
    done = run_cli(
        "study", "freeze", *shift, "--steps", "200", "--labelled", "20,200", "--out", str(tmp_path), "--quiet"
    )
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "freeze-mnist-usps.csv") as f:
        rows = list(csv.DictReader(f))
    found = {(int(r["labelled"]), r["variant"]): float(r["accuracy"]) for r in rows}
    assert set(found) == {(0, "source only")} | {(n, v) for n in (20, 200) for v in ("frozen", "fine-tuned", "scratch")}
    assert found[(0, "source only")] > 0.4  # MNIST features already read most USPS digits
    # measured with these settings: source only 54.8; 20 labels: frozen 66.3, fine-tuned 74.1, scratch 73.0;
    # 200 labels: 80.1, 83.7, 83.8
    assert found[(20, "frozen")] > found[(0, "source only")] + 0.05  # a new classifier on 20 target images helps
    assert all(found[(200, v)] > found[(20, v)] + 0.03 for v in ("frozen", "fine-tuned", "scratch"))
    bad = run_cli("study", "freeze", *shift, "--labelled", "ten", "--out", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--labelled 'ten'" in bad.stderr
    assert np.isfinite(found[(20, "frozen")])


def test_the_studies_name_no_dataset_of_their_own(tmp_path):
    unnamed = run_cli("study", "transfer", "--out", str(tmp_path))
    assert unnamed.returncode == 2 and unnamed.stderr.count("\n") == 1 and "--dataset" in unnamed.stderr
    no_shift = run_cli("study", "freeze", "--dataset", "glyphs", "--target", "serif", "--out", str(tmp_path))
    assert no_shift.returncode == 2 and no_shift.stderr.count("\n") == 1
    assert "glyphs declares no default shift: pass --source" in no_shift.stderr
    no_domains = run_cli("study", "freeze", "--dataset", "xlsa17:AWA2", "--out", str(tmp_path))
    assert no_domains.returncode == 2 and no_domains.stderr.count("\n") == 1, no_domains.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_labelled_images_take_the_classes_of_the_pool_in_turn():
    labels = np.repeat([3, 5, 8], [10, 4, 10])  # class 5 runs out after its fourth image
    pool = np.arange(len(labels))
    chosen = labelled_images(labels, pool, 10)
    assert list(np.bincount(labels[chosen], minlength=9)[[3, 5, 8]]) == [4, 3, 3]
    assert list(np.bincount(labels[labelled_images(labels, pool, 20)], minlength=9)[[3, 5, 8]]) == [8, 4, 8]
    assert np.array_equal(labelled_images(labels, pool, 10), chosen), "a seeded draw"
    assert set(labelled_images(labels, pool, 6)) <= set(chosen), "a smaller draw is a prefix of a larger one"


@pytest.mark.parametrize("study", ["transfer", "freeze"])
def test_the_studies_import_neither_learners_nor_datasets(study):
    names = set()
    for module in (study, "common"):
        origin = importlib.util.find_spec(f"fewshot.leaderboard.studies.{module}").origin
        for node in ast.walk(ast.parse(Path(origin).read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert "fewshot.core.data" in names, "the parse sees the studies' imports"
    banned = [n for n in names if n.startswith(("fewshot.baselines", "fewshot.tasks"))]
    assert not banned, f"{study} imports {banned}: take what it needs from the benchmark and its own constants"
