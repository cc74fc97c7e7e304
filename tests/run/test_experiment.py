"""From words to a trained learner and a recorded run: the engine's steps, each on the offline glyphs."""

import dataclasses

import numpy as np
import pytest
import torch

from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Words
from fewshot.records.store import RUN_FIELDS, ResultsStore
from fewshot.run import experiment
from fewshot.run.training import Budget

CPU = torch.device("cpu")


def test_the_default_dataset_is_the_one_that_needs_no_files(glyphs):
    bench = experiment.open_benchmark(None, None)
    assert (bench.dataset, bench.protocol) == (glyphs.dataset, glyphs.protocol)
    with pytest.raises(FewshotError, match="unknown glyphs protocol 'nope': choose one of"):
        experiment.open_benchmark("glyphs", "nope")
    with pytest.raises(FewshotError, match="--target-labels must be zero or positive"):
        experiment.open_benchmark("glyphs", None, source="sans", target="serif", target_labels=-1)


def test_training_cells_take_the_protocol_s_defaults(glyphs, glyphs_zsl):
    episodic = experiment.resolve_training_cell(glyphs, Words())
    assert (episodic.kind, episodic.ways, episodic.shots) == ("episodic", 5, 1)
    zero_shot = experiment.resolve_training_cell(glyphs_zsl, Words())
    assert (zero_shot.kind, zero_shot.shots) == ("all-classes", 0)


def test_make_setup_refuses_what_the_cell_s_protocol_cannot_score(glyphs):
    cell = experiment.resolve_cell(glyphs, 5, 0)
    with pytest.raises(FewshotError, match="needs support images and cannot run with --shots 0"):
        experiment.make_setup("protonet", {}, glyphs, cell)
    per_instance = experiment.resolve_cell(glyphs, 5, None, kind="per-instance", instances=3)
    with pytest.raises(FewshotError, match="cannot run --per-instance"):
        experiment.make_setup("protonet", {}, glyphs, per_instance)
    with pytest.raises(FewshotError, match="unknown learner"):
        experiment.make_setup("no-such-learner", {}, glyphs, experiment.resolve_cell(glyphs, 5, 1))
    with pytest.raises(FewshotError, match="--adapt dann needs a domain shift"):
        experiment.make_setup("protonet", {}, glyphs, experiment.resolve_cell(glyphs, 5, 1), adapt="dann")


def test_equal_configurations_share_one_checkpoint_and_any_difference_gets_another(glyphs):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {}, glyphs, cell)
    same = experiment.make_setup("protonet", {}, glyphs, dataclasses.replace(cell, episodes=99))  # not trained on
    path = experiment.cached_checkpoint(setup.training_config(Budget(steps=5)))
    assert path == experiment.cached_checkpoint(same.training_config(Budget(steps=5)))
    for other in (
        experiment.make_setup("protonet", {"lr": "0.01"}, glyphs, cell).training_config(Budget(steps=5)),
        setup.training_config(Budget(steps=6)),
        experiment.make_setup("protonet", {}, glyphs, dataclasses.replace(cell, seed=1)).training_config(
            Budget(steps=5)
        ),
    ):
        assert experiment.cached_checkpoint(other) != path


def test_a_trained_configuration_is_reused_and_a_longer_budget_continues_it(glyphs):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {"train_ways": "5"}, glyphs, cell)
    short = experiment.ensure_trained(setup, Budget(steps=4), CPU, progress=False)
    again = experiment.ensure_trained(setup, Budget(steps=4), CPU, progress=False)
    assert again.steps == short.steps == 4 and again.checkpoint == short.checkpoint
    for key, value in short.learner.state_dict().items():
        assert torch.equal(value, again.learner.state_dict()[key])
    continued = experiment.ensure_trained(setup, Budget(steps=8), CPU, progress=False)
    direct = experiment.ensure_trained(
        setup, Budget(steps=8), CPU, out=short.checkpoint.parent / "direct.pt", progress=False
    )
    for key, value in continued.learner.state_dict().items():  # 4 + 4 steps are the 8-step training
        assert torch.equal(value, direct.learner.state_dict()[key]), key


def test_a_run_record_fills_the_store_s_columns_from_the_setup_and_the_protocol(glyphs, tmp_path):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {}, glyphs, cell)
    trained = experiment.ensure_trained(setup, Budget(steps=2), CPU, progress=False)
    result = experiment.evaluate_setup(setup, trained.learner, CPU)
    record = experiment.run_record(setup, trained, result, CPU)
    assert set(record) <= set(RUN_FIELDS)
    assert (record["protocol_kind"], record["unit"], record["backbone"], record["transductive"]) == (
        "episodic",
        "episode",
        "Conv4",
        0,
    )
    assert record["threads"] == torch.get_num_threads() and record["fewshot_version"]
    run = ResultsStore(tmp_path / "r.sqlite").run(
        ResultsStore(tmp_path / "r.sqlite").record(record, result.accuracies, setup.protocol.figures(result))
    )
    assert np.array_equal(run["accuracies"], result.accuracies) and run["mean"] == pytest.approx(result.mean)


def test_devices_are_checked(monkeypatch):
    assert experiment.resolve_device("cpu") == CPU
    with pytest.raises(FewshotError, match="choose auto, cpu, cuda or cuda:N"):
        experiment.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert experiment.resolve_device("auto") == CPU
    with pytest.raises(FewshotError, match="no CUDA device"):
        experiment.resolve_device("cuda")


def test_a_zero_budget_is_refused_unless_asked_for():
    assert experiment.check_budget(None) is None and experiment.check_budget("5steps") == Budget(steps=5)
    with pytest.raises(FewshotError, match=r"train for at least 1 step .*, or add --allow-untrained"):
        experiment.check_budget("0steps")
    assert experiment.check_budget("0steps", allow_untrained=True) == Budget(steps=0)
    for budget in (None, "5steps", "2min"):
        with pytest.raises(FewshotError, match="--allow-untrained goes with --budget 0steps"):
            experiment.check_budget(budget, allow_untrained=True)


def test_an_untrained_run_records_zero_steps(glyphs, tmp_path):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {}, glyphs, cell)
    trained = experiment.ensure_trained(
        setup, experiment.default_budget(setup, "0steps", allow_untrained=True), CPU, out=tmp_path / "m.pt"
    )
    result = experiment.evaluate_setup(setup, trained.learner, CPU)
    run = experiment.run_record(setup, trained, result, CPU)
    assert (run["train_budget"], run["train_steps"]) == ("0steps", 0)


@pytest.mark.parametrize("name", ["meta", "mps", "xla", "hpu", "cpu:0", "cuda:x", "cuda:7", "gpu"])
def test_a_device_this_suite_does_not_run_on_is_refused_before_any_work(name):
    """torch names devices (meta, mps, xla) that passed this check and then failed mid-training with a traceback."""
    from fewshot.run.experiment import resolve_device

    if name == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has an eighth GPU")
    with pytest.raises(FewshotError, match=r"--device"):
        resolve_device(name)


def test_a_run_records_the_defaults_chosen_on_validation_that_it_left_as_they_are(glyphs, monkeypatch):
    from fewshot.baselines.adaptations.coral import DeepCORAL
    from fewshot.baselines.protonet import ProtoNet

    monkeypatch.setattr(ProtoNet, "chosen_on", {"lr": "val-classes: runs 1-2", "hidden": "val-classes: run 3"})
    monkeypatch.setattr(DeepCORAL, "chosen_on", {"weight": "oracle: runs 4-5"})
    cell = experiment.resolve_cell(glyphs, 5, 1, None, 20, 0)
    setup = experiment.make_setup("protonet", {"hidden": "32"}, glyphs, cell)
    assert experiment.selection_record(setup) == {"defaults": {"lr": "val-classes: runs 1-2"}}
    digits = experiment.open_benchmark("digits", "uda")
    image_cell = experiment.resolve_cell(digits)
    adapted = experiment.make_setup("finetune", {}, digits, image_cell, adapt="coral")
    assert experiment.selection_record(adapted) == {"defaults": {"coral.weight": "oracle: runs 4-5"}}
    changed = experiment.make_setup("finetune", {"coral.weight": "3"}, digits, image_cell, adapt="coral")
    assert experiment.selection_record(changed) == {}
