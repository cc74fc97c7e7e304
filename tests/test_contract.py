"""Every registered learner, built-in or plug-in, through the same real episodes."""
import pytest
import torch

from fewshot.run import experiment
from fewshot.core import registry
from fewshot.run.harness import Budget, evaluate


@pytest.mark.parametrize("name", registry.names("learner"))
def test_learner_contract(name, omniglot, glyphs_zsl):
    """Zero-shot learners meet zero-shot episodes of glyphs, the others Omniglot's; their grid's
    hyperparameters stay at the defaults (choosing them on val is tested elsewhere)."""
    cls = registry.learner(name)
    bench = glyphs_zsl if cls.reads_sides else omniglot["lake"]
    cell = experiment.resolve_cell(bench, 5, 0 if cls.reads_sides else 1, 3, 10, 0)
    overrides = {k: str(cls.hparams[k]) for k in cls.hparam_grid}
    if "head_steps" in cls.hparams:  # the zero-shot heads' fitting, as short as the 3 training steps
        overrides["head_steps"] = "20"
    setup = experiment.make_setup(name, overrides, bench, cell)
    trained = experiment.ensure_trained(setup, Budget(steps=3), torch.device("cpu"), progress=False)
    learner = trained.learner
    experiment.prepare(setup, learner, torch.device("cpu"))  # nothing for learners that fit nothing on the split
    learner.eval()
    source = experiment.test_source(bench, setup.cell, setup.side)
    episode = source[0]
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    logits = learner.predict(episode)
    assert logits.shape == (15, 5) and torch.isfinite(logits).all()
    assert torch.equal(logits, learner.predict(episode)), "predict is deterministic"
    for key, value in learner.state_dict().items():
        assert torch.equal(value, before[key]), f"predict changed {key}"
    assert 0.0 <= evaluate(learner, source, 10).mean <= 1.0
    assert learner.paper and learner.family and isinstance(learner.hparams, dict)
