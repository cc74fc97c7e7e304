"""The papers' figures: keyed by names the suite uses, in range, each citing its table, and looked up by backbone."""

import json
import re

import pytest

from fewshot.leaderboard import papers
from fewshot.leaderboard.matrix import matrices
from fewshot.leaderboard.table import render
from records_helpers import stored_run

# The datasets and protocols a figure may be keyed by: Omniglot's and the natural-image benchmarks'.
BENCHMARKS = {
    ("omniglot", "vinyals"),
    ("mini-imagenet", "ravi"),
    ("tiered-imagenet", "ren"),
    ("cifar-fs", "bertinetto"),
    ("fc100", "oreshkin"),
    ("cub", "chen"),
}
LEARNERS = {
    "protonet",
    "matchingnet",
    "maml",
    "fomaml",
    "reptile",
    "metasgd",
    "anil",
    "metalstm",
    "finetune",
    "mann",
    "metanet",
    "lstmopt",
}
BACKBONES = {"conv4", "resnet12"}
# A citation: its authors and year, and the table the figure is read from.
CITATION = re.compile(r"^[A-Z][a-z]+( et al\.| and [A-Z][a-z]+) (19|20)\d\d, Table \d+\b")

TABLES = {"PAPER_ACCURACY": papers.PAPER_ACCURACY, "OTHER_METHODS": papers.OTHER_METHODS}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_figure_is_keyed_by_a_known_cell_in_range_and_cites_its_table(table):
    for (learner, dataset, protocol, ways, shots, backbone), (value, citation) in TABLES[table].items():
        key = (learner, dataset, protocol, ways, shots, backbone)
        assert (dataset, protocol) in BENCHMARKS, key
        assert backbone in BACKBONES, key
        assert ways in (5, 20) and shots in (1, 5), key
        assert 0 < value < 100, key
        assert CITATION.match(citation), f"{key}: {citation!r} names no authors, year and table"


def test_every_learner_is_one_of_the_suite_s_or_a_variant_it_labels():
    for learner, *_ in papers.PAPER_ACCURACY:
        name, _, variant = learner.partition(" (")
        assert name in LEARNERS, learner
        if variant:
            hp, value = papers.VARIANTS[name]
            assert learner == papers.paper_learner(name, {hp: value}), learner


def test_transductive_figures_say_so():
    for (learner, dataset, *_), (_, citation) in papers.PAPER_ACCURACY.items():
        if learner in ("maml", "fomaml") and dataset in ("omniglot", "mini-imagenet"):
            assert "(transductive batch norm)" in citation or "transductive batch norm)" in citation, citation
        if learner == "reptile":
            assert "(non-transductive)" in citation, citation


def _run(id, learner="protonet", hparams=None, **changes):
    return stored_run(
        id,
        learner,
        **{
            "mean": 0.5,
            "hparams": json.dumps(hparams or {}),
            "dataset": "mini-imagenet",
            "protocol": "ravi",
            **changes,
        },
    )


def test_the_lookup_takes_the_run_s_backbone_default_conv4():
    assert papers.paper_figure(_run(1))[0] == 49.42  # no backbone named: the dataset's default, conv4
    assert papers.paper_figure(_run(2, hparams={"backbone": "conv4"}))[0] == 49.42
    assert papers.paper_figure(_run(3, hparams={"backbone": "resnet12"}))[0] == 59.25
    assert papers.paper_figure(_run(4, hparams={"backbone": "ResNet12"}))[0] == 59.25
    assert (
        papers.paper_figure(_run(5, hparams={"backbone": "resnet12"}, dataset="tiered-imagenet", protocol="ren"))[0]
        == 61.74
    )
    # no paper figure at that backbone: nothing shown, rather than the other backbone's
    assert (
        papers.paper_figure(_run(6, hparams={"backbone": "resnet12"}, dataset="omniglot", protocol="vinyals")) is None
    )
    assert papers.paper_figure(_run(7, learner="maml", hparams={"backbone": "resnet12"})) is None
    assert (
        papers.paper_accuracy("protonet", "mini-imagenet", "ravi", 5, 5)
        == papers.PAPER_ACCURACY[("protonet", "mini-imagenet", "ravi", 5, 5, "conv4")]
    )


def test_a_variant_gets_its_own_figure_or_none():
    assert papers.paper_figure(_run(1, learner="matchingnet", hparams={"fce": False}))[0] == 43.40
    assert papers.paper_figure(_run(2, learner="matchingnet", hparams={"fce": True}))[0] == 43.56
    # Baseline++ (a cosine head) is never shown Baseline's figure
    assert papers.paper_learner("finetune", {"head": "cosine"}) == "finetune (head=cosine)"
    assert papers.paper_learner("finetune", {"head": "linear"}) == "finetune"


def test_the_leaderboard_shows_each_run_the_figure_of_its_backbone():
    conv4 = _run(1, mean=0.5)  # 5-way 1-shot, the default backbone
    resnet = _run(2, mean=0.7, shots=5, hparams={"backbone": "resnet12"})  # 5-way 5-shot, ResNet-12
    (matrix,) = matrices([conv4, resnet])
    assert len(matrix.rows) == 2, "the backbone is a hyperparameter: each backbone is a row of its own"
    shown = {
        column.title: entry.paper
        for row in matrix.rows
        for column in matrix.columns
        if (entry := matrix.entry(row, column)) is not None
    }
    assert shown == {"5-way 1-shot": papers.paper_figure(conv4), "5-way 5-shot": papers.paper_figure(resnet)}
    assert shown["5-way 1-shot"][0] == 49.42 and shown["5-way 5-shot"][0] == 75.60
    text = render([conv4, resnet], "md")
    assert "; paper 49.42 (" in text and "; paper 75.6 (" in text
    assert "| 49.42 (Snell et al. 2017, Table 2" in text and "| 75.6 (Lee et al. 2019, Table 3" in text
