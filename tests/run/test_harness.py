import numpy as np
import pytest
import torch

from fewshot.core.data import ClassImages, ClassInfo, Split
from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner
from fewshot.core.sampler import EpisodeSampler
from fewshot.run import experiment
from fewshot.run.harness import Budget, evaluate, evaluate_all_classes


def test_budget_parsing():
    assert Budget.parse("500steps") == Budget(steps=500)
    assert Budget.parse("1step").steps == 1
    assert Budget.parse("10min") == Budget(minutes=10.0)
    assert Budget.parse("1.5min").minutes == 1.5
    assert str(Budget.parse("10 min")) == "10min"
    for bad in ("10", "fast", "1.5steps", "0min", "-3steps"):
        with pytest.raises(FewshotError, match="--budget"):
            Budget.parse(bad)
    assert Budget(steps=3).done(3, 0.0) and not Budget(steps=3).done(2, 1e9)
    assert Budget(minutes=1).done(0, 60.0) and not Budget(minutes=1).done(10**9, 59.0)


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


def test_training_resumes_exactly(omniglot, tmp_path):
    """A training stopped at a checkpoint and resumed ends with the weights of one uninterrupted run."""
    setup = _setup(omniglot["lake"], "protonet", train_ways=10, train_queries=2, lr_halve_every=3)
    whole = experiment.ensure_trained(
        setup, Budget(steps=8), torch.device("cpu"), out=tmp_path / "whole.pt", progress=False, checkpoint_every=4
    )
    first = experiment.ensure_trained(
        setup, Budget(steps=8), torch.device("cpu"), out=tmp_path / "part.pt", progress=False, checkpoint_every=4
    )
    # Simulate a kill right after the step-4 checkpoint: keep only a partial file written at step 4.
    partial = tmp_path / "part.pt.partial"
    interrupted = experiment.ensure_trained(
        setup, Budget(steps=4), torch.device("cpu"), out=tmp_path / "four.pt", progress=False, checkpoint_every=100
    )
    payload = torch.load(tmp_path / "four.pt", weights_only=True)
    payload.update(complete=False, config=setup.training_config(Budget(steps=8)))
    torch.save(payload, partial)
    (tmp_path / "part.pt").unlink()
    resumed = experiment.ensure_trained(
        setup, Budget(steps=8), torch.device("cpu"), out=tmp_path / "part.pt", progress=False, checkpoint_every=4
    )
    assert resumed.outcome.resumed_from == 4 and not partial.exists()
    for (name, a), b in zip(whole.learner.state_dict().items(), resumed.learner.state_dict().values()):
        assert torch.equal(a, b), name
    assert interrupted.steps == 4 and first.steps == 8
    assert (
        resumed.learner.optimizer.state_dict()["state"][0]["step"]
        == whole.learner.optimizer.state_dict()["state"][0]["step"]
    )


def test_longer_budget_continues_the_cached_shorter_training(omniglot, tmp_path, monkeypatch):
    """Training 8 steps after a cached 4-step run continues it and ends with the weights of an 8-step run."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    setup = _setup(omniglot["lake"], "protonet", train_ways=10, train_queries=2, lr_halve_every=3)
    whole = experiment.ensure_trained(
        setup, Budget(steps=8), torch.device("cpu"), out=tmp_path / "whole.pt", progress=False
    )
    short = experiment.ensure_trained(setup, Budget(steps=4), torch.device("cpu"), progress=False)
    lines = []
    longer = experiment.ensure_trained(setup, Budget(steps=8), torch.device("cpu"), progress=False, log=lines.append)
    assert longer.outcome.resumed_from == 4 and longer.steps == 8 and "continuing the 4steps checkpoint" in lines[0]
    assert short.checkpoint.exists() and longer.checkpoint != short.checkpoint, "the shorter run stays cached"
    for (name, a), b in zip(whole.learner.state_dict().items(), longer.learner.state_dict().values()):
        assert torch.equal(a, b), name
    other = _setup(omniglot["lake"], "protonet", train_ways=10, train_queries=3, lr_halve_every=3)
    fresh = experiment.ensure_trained(other, Budget(steps=5), torch.device("cpu"), progress=False)
    assert fresh.outcome.resumed_from == 0, "another configuration never continues this one"


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
