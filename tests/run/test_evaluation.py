"""Evaluation primitives: the embedding cache gives the plain path's numbers; every class at once."""

import numpy as np
import pytest
import torch

from conftest import damage_member
from fewshot.core.data import ClassImages, ClassInfo, Split
from fewshot.core.learner import Learner
from fewshot.core.sampler import EpisodeSampler
from fewshot.run import experiment
from fewshot.run.evaluation import evaluate, evaluate_all_classes


def _setup(bench, learner, **hp):
    cell = experiment.resolve_cell(bench, 5, 1, 5, 40, 0)
    return experiment.make_setup(learner, {k: str(v) for k, v in hp.items()}, bench, cell)


@pytest.mark.parametrize(
    "learner, hp",
    [
        ("protonet", {}),
        ("finetune", {"ft_epochs": 5}),
        ("finetune", {"ft_epochs": 3, "tune_blocks": 1, "head": "cosine"}),
    ],
)
def test_embedding_cache_gives_the_numbers_of_the_plain_path(omniglot, learner, hp):
    setup = _setup(omniglot["vinyals"], learner, **hp)
    model = experiment.build(setup, torch.device("cpu"))
    source = experiment.test_source(setup.bench, setup.cell)
    cached = evaluate(model, source, 40, use_cache=True)
    plain = evaluate(model, source, 40, use_cache=False)
    assert cached.cached and not plain.cached
    assert np.array_equal(cached.accuracies, plain.accuracies)
    assert cached.digest == plain.digest
    assert 0.2 < cached.mean < 1.0


def test_persisted_embeddings_are_reused_only_for_the_same_weights(omniglot):
    bench = omniglot["lake-runs"]
    setup = experiment.make_setup("protonet", {}, bench, experiment.resolve_cell(bench, None, None, None, None, 0))
    model = experiment.build(setup, torch.device("cpu"))
    source = experiment.test_source(bench, setup.cell)
    plain = evaluate(model, source, 20, use_cache=False)
    stored = evaluate(model, source, 20, persist=True)
    again = evaluate(model, source, 20, persist=True)
    assert (stored.table_source, again.table_source) == ("computed", "disk")
    assert np.array_equal(again.accuracies, plain.accuracies) and np.array_equal(stored.accuracies, plain.accuracies)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert evaluate(model, source, 5, persist=True).table_source == "computed", "other weights, another table"


def test_a_damaged_embedding_table_is_recomputed_saying_so(glyphs, capfd, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path))
    setup = _setup(glyphs, "protonet")
    model = experiment.build(setup, torch.device("cpu"))
    source = experiment.test_source(glyphs, setup.cell)
    stored = evaluate(model, source, 5, persist=True)
    (table,) = (tmp_path / "embeddings").iterdir()
    damage_member(table)
    capfd.readouterr()
    again = evaluate(model, source, 5, persist=True)
    err = capfd.readouterr().err
    assert again.table_source == "computed" and np.array_equal(again.accuracies, stored.accuracies)
    assert err.count("\n") == 1 and f"the embedding cache entry {table} is damaged" in err and "CRC-32" in err, err
    assert evaluate(model, source, 5, persist=True).table_source == "disk", "replaced by a whole table"


class _NearestDescription(Learner):
    """Scores each query by its dot product with each class's description: the features are descriptions."""

    needs_support = False

    def embed(self, x):
        return x

    def predict_embedded(self, episode):
        return episode.query_x @ episode.side.T


def _described_features(classes=6, per_class=(3, 1, 4, 2, 5, 2), confused=True):
    """Features equal to a one-hot description of their class; if ``confused``, class 2's images look like class 3."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    side = torch.eye(classes)
    features = side[labels].clone()
    if confused:
        features[labels == 2] = side[3]
    return ClassImages(features, labels, tuple(ClassInfo(f"c{c}", "g") for c in range(classes))), side


def test_all_classes_scores_every_image_once_and_averages_per_class():
    data, side = _described_features()
    learner = _NearestDescription(None, {})
    result = evaluate_all_classes(learner, data, Split.of([1, 2, 3, 4]), side, batch=3)  # batches cut across classes
    assert result.accuracies.tolist() == [1.0, 0.0, 1.0, 1.0]  # per class, in split order (class sizes differ)
    assert result.mean == pytest.approx(0.75)  # not 8/12 per image


def test_zero_shot_episodes_from_the_embedding_cache_carry_their_descriptions():
    data, side = _described_features(per_class=(4,) * 6, confused=False)
    source = EpisodeSampler(data, Split.of(range(6)), 3, 0, 2, seed=0, side=side)
    cached = evaluate(_NearestDescription(None, {}), source, 10, use_cache=True)
    plain = evaluate(_NearestDescription(None, {}), source, 10, use_cache=False)
    assert np.array_equal(cached.accuracies, plain.accuracies) and cached.mean == 1.0
