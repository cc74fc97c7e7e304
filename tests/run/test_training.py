"""The training loop: budgets, exact resume, continuing a shorter training."""

import pytest
import torch

from fewshot.core.errors import FewshotError
from fewshot.run import experiment
from fewshot.run.training import Budget


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
    payload.update(complete=False, config=experiment.checkpoint_config(setup, Budget(steps=8), torch.device("cpu")))
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


def test_budgets_are_bounded():
    assert Budget.parse("10000000steps").steps == 10_000_000 and Budget.parse("10080min").minutes == 10080
    assert Budget.parse("0steps").steps == 0  # a learner with nothing to train declares it
    for bad, message in (
        ("10000001steps", "--budget '10000001steps': at most 10,000,000 steps"),
        (f"{10**30}steps", f"--budget '{10**30}steps': at most 10,000,000 steps"),
        ("10081min", "--budget '10081min': at most 10,080 minutes (a week)"),
    ):
        with pytest.raises(FewshotError) as caught:
            Budget.parse(bad)
        assert str(caught.value) == message


def test_a_checkpoint_is_reused_only_on_the_same_thread_count(omniglot, tmp_path, monkeypatch):
    """CPU sums split over threads round differently, so a checkpoint trained on 2 threads never serves a 1-thread run."""
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    setup = _setup(omniglot["lake"], "protonet", train_ways=10, train_queries=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), progress=False)
        again = experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), progress=False)
        torch.set_num_threads(1)
        one = experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), progress=False)
        experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), out=tmp_path / "one.pt", progress=False)
        torch.set_num_threads(2)
        with pytest.raises(FewshotError, match="trained on cpu/1 threads"):
            experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), out=tmp_path / "one.pt")
    finally:
        torch.set_num_threads(threads)
    assert again.checkpoint == two.checkpoint and one.checkpoint != two.checkpoint
    assert one.outcome is not None and one.outcome.steps == 3, "the 1-thread run trained anew"
