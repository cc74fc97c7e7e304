"""Every registered learner, built-in or plug-in, through the same real episodes."""
import pytest
import torch

from fewshot import experiment, registry
from fewshot.harness import Budget, evaluate


@pytest.mark.parametrize("name", registry.names("learner"))
def test_learner_contract(name, omniglot):
    bench = omniglot["lake"]
    cell = experiment.resolve_cell(bench, 5, 1, 3, 10, 0)
    setup = experiment.make_setup(name, {}, bench, cell)
    trained = experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), progress=False)
    learner = trained.learner
    learner.eval()
    episode = experiment.test_source(bench, cell)[0]
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    logits = learner.predict(episode)
    assert logits.shape == (15, 5) and torch.isfinite(logits).all()
    assert torch.equal(logits, learner.predict(episode)), "predict is deterministic"
    for key, value in learner.state_dict().items():
        assert torch.equal(value, before[key]), f"predict changed {key}"
    assert 0.0 <= evaluate(learner, experiment.test_source(bench, cell), 10).mean <= 1.0
    assert learner.paper and learner.family and isinstance(learner.hparams, dict)
