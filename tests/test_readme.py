"""The README's promises: its example learner runs, its commands exist."""

import re
import types
from pathlib import Path

import torch

from fewshot.run import experiment
from fewshot.run.evaluation import evaluate

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_example_learner_in_the_readme_works(glyphs):
    code = next(block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "class NearestMean" in block)
    module = types.ModuleType("nearest_mean")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    cls = module.NearestMean
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 20, 0)
    setup = experiment.Setup("nearest_mean", cls, dict(cls.hparams), glyphs, cell)
    learner = experiment.build(setup, torch.device("cpu"))
    batch_at = experiment.batches_for(setup, learner)
    losses = [learner.train_step(batch_at(step))["loss"] for step in range(30)]
    assert losses[-1] < losses[0]
    assert evaluate(learner, experiment.test_source(glyphs, cell), 20).mean > 0.5


def test_quick_start_commands_are_the_documented_ones():
    assert "pip install . && fewshot eval --learner mann --ways 5 --shots 1" in README
    assert "pip install '.[test]' && pytest" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install --quiet '.[test]'" in ci and ci.strip().endswith("pytest")


def test_the_python_api_examples_in_the_readme_run_as_doctests():
    """Every ``>>>`` example of the README runs, with the output it shows."""
    import doctest

    parser = doctest.DocTestParser()
    examples = parser.get_doctest(README, {}, "README.md", str(Path("README.md")), 0)
    assert len(examples.examples) > 10, "the README shows the Python API"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(examples)
    assert runner.summarize(verbose=False).failed == 0


def test_the_example_protocol_in_the_readme_works(glyphs):
    from fewshot.core import registry

    code = next(block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "class OneQuery" in block)
    module = types.ModuleType("one_query")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    registry.register("protocol", "one-query", module.OneQuery)
    try:
        cell = experiment.resolve_cell(glyphs, 5, 1, None, 20, 0, kind="one-query")
        assert (cell.kind, cell.queries) == ("one-query", 1)
        setup = experiment.make_setup("protonet", {}, glyphs, cell)
        learner = experiment.build(setup, torch.device("cpu"))
        result = setup.protocol.evaluate(setup, learner, torch.device("cpu"))
        correct = result.accuracies * 5  # one query of each of 5 classes: 0 to 5 right
        assert len(result.accuracies) == 20 and (abs(correct - correct.round()) < 1e-6).all()
    finally:
        registry.unregister("protocol", "one-query")
