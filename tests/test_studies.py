import copy
import csv

import numpy as np
import torch

from conftest import run_cli
from fewshot.core.data import Split
from fewshot.studies import held_out_masks, new_network, train_network


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
    done = run_cli("study", "transfer", "--steps", "3", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(tmp_path / "transfer-glyphs.csv")))
    variants = {(int(r["n"]), r["variant"]) for r in rows}
    assert variants == {(n, v) for n in range(5) for v in ("baseB", "BnB", "BnB+", "AnB", "AnB+")}
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert (tmp_path / "transfer-glyphs.png").stat().st_size > 10_000


def test_the_freeze_study_compares_three_ways_of_using_labelled_target_images(tmp_path, data_root):
    done = run_cli("study", "freeze", "--steps", "200", "--labelled", "20,200", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(tmp_path / "freeze-mnist-usps.csv")))
    found = {(int(r["labelled"]), r["variant"]): float(r["accuracy"]) for r in rows}
    assert set(found) == {(0, "source only")} | {(n, v) for n in (20, 200) for v in ("frozen", "fine-tuned", "scratch")}
    assert found[(0, "source only")] > 0.4  # MNIST features already read most USPS digits
    # measured with these settings: source only 54.8; 20 labels: frozen 66.3, fine-tuned 74.1, scratch 73.0;
    # 200 labels: 80.1, 83.7, 83.8
    assert found[(20, "frozen")] > found[(0, "source only")] + 0.05  # a new classifier on 20 target images helps
    assert all(found[(200, v)] > found[(20, v)] + 0.03 for v in ("frozen", "fine-tuned", "scratch"))
    bad = run_cli("study", "freeze", "--labelled", "ten", "--out", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--labelled 'ten'" in bad.stderr
    assert np.isfinite(found[(20, "frozen")])
