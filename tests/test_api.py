"""The Python API (``fewshot.api``): the command line's episodes and numbers, from Python."""

import doctest
import json
import pickle
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fewshot
import fewshot.api
from conftest import run_cli
from fewshot.core import registry
from fewshot.core.backbones import Conv4
from fewshot.core.errors import FewshotError
from fewshot.core.sampler import EpisodeSampler
from fewshot.core.stats import mean_interval
from fewshot.records.store import ResultsStore
from fewshot.run import evaluation, experiment, training

EPISODE_FIELDS = ("support_x", "support_y", "query_x", "query_y", "class_ids", "support_items", "query_items")


def same_episode(a, b) -> bool:
    return a.seed == b.seed and all(torch.equal(getattr(a, f), getattr(b, f)) for f in EPISODE_FIELDS)


@pytest.fixture
def registered():
    """Names registered by a test, unregistered after it whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        if name in registry._IN_PROCESS["learner"]:
            fewshot.unregister_learner(name)


def test_episode_i_is_the_one_fewshot_eval_scores(glyphs):
    bench = fewshot.benchmark("glyphs", ways=5, shots=1)
    cell = experiment.resolve_cell(glyphs, 5, 1, None, None, 0)  # `fewshot eval --ways 5 --shots 1`
    cli = experiment.test_source(glyphs, cell)
    assert bench.cell == cell and len(bench) == 600
    assert (bench.ways, bench.shots, bench.queries, bench.seed, bench.split) == (5, 1, 15, 0, "test")
    for i in (0, 1, 599):
        assert same_episode(bench[i], cli[i])
    assert not same_episode(bench[0], bench[1])
    assert repr(bench) == "EpisodeSet(glyphs/scripts, test split: 5-way 1-shot, 15 queries, 600 episodes, seed 0)"
    for outside in (-1, 600, 10**6):
        with pytest.raises(IndexError, match="indices 0 to 599"):
            bench[outside]
    few = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=3)
    assert [e.seed for e in few] == [cli[i].seed for i in range(3)]


def test_each_split_has_its_own_episodes(glyphs):
    sets = {
        split: fewshot.benchmark("glyphs", ways=5, shots=1, split=split, episodes=20) for split in fewshot.api.SPLITS
    }
    for split, bench in sets.items():
        classes = set(glyphs.split(split).classes.tolist())
        assert bench.split == split and bench.cell.split == split
        assert all(set(e.class_ids.tolist()) <= classes for e in bench)
    # val episodes are those training validates on; train episodes those a learner trains on (`experiment`'s roles)
    val = EpisodeSampler(glyphs.data, glyphs.split("val"), 5, 1, 15, 0, role="val")
    train = EpisodeSampler(glyphs.data, glyphs.split("train"), 5, 1, 15, 0, role="train")
    assert same_episode(sets["val"][7], val[7]) and same_episode(sets["train"][7], train[7])
    test_role = EpisodeSampler(glyphs.data, glyphs.split("train"), 5, 1, 15, 0, role="test")
    assert not any(same_episode(sets["train"][i], test_role[i]) for i in range(20))


def test_a_selection_s_episodes_are_those_fewshot_eval_select_scores_on_the_validation_classes(glyphs):
    chosen = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=20, select="val-classes")
    view = experiment.open_benchmark("glyphs", None, select="val-classes")
    cli = experiment.test_source(view, experiment.resolve_cell(view, 5, 1, None, 20, 0))
    assert chosen.split == "val" and all(same_episode(chosen[i], cli[i]) for i in range(20))
    validation, test = set(glyphs.split("val").classes.tolist()), set(glyphs.split("test").classes.tolist())
    assert all(set(e.class_ids.tolist()) <= validation for e in chosen)
    training = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=20, split="train", select="val-classes")
    assert all(not set(e.class_ids.tolist()) & (validation | test) for e in training)
    with pytest.raises(FewshotError, match="leave split out"):
        fewshot.benchmark("glyphs", ways=5, shots=1, split="val", select="val-classes")


def test_loader_gives_the_same_episodes_with_any_worker_count():
    bench = fewshot.benchmark("glyphs", ways=5, shots=2, queries=3, episodes=7)
    alone = list(bench.loader())
    with_workers = list(bench.loader(num_workers=2))
    assert len(alone) == len(with_workers) == 7
    assert all(same_episode(a, b) and same_episode(a, bench[i]) for i, (a, b) in enumerate(zip(alone, with_workers)))
    batches = list(bench.loader(num_workers=2, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert all(same_episode(e, bench[i]) for i, e in enumerate(e for b in batches for e in b))
    shuffled = [[e.seed for e in b] for b in bench.loader(batch_size=7, shuffle=True)]
    assert shuffled == [[e.seed for e in b] for b in bench.loader(batch_size=7, shuffle=True, num_workers=2)]
    assert sorted(shuffled[0]) == sorted(e.seed for e in alone) and shuffled[0] != [e.seed for e in alone]


def test_episodes_travel_between_processes():
    bench = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=2)
    assert same_episode(pickle.loads(pickle.dumps(bench[1])), bench[1])
    # a fresh interpreter per worker (the default on macOS and Windows): the loader's dataset must pickle
    spawned = list(bench.loader(num_workers=1, multiprocessing_context="spawn"))
    assert all(same_episode(e, bench[i]) for i, e in enumerate(spawned))


def test_an_untrained_conv4_beats_chance_as_a_nearest_centroid_learner():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Conv4()
    bench = fewshot.benchmark("glyphs", ways=5, shots=5, episodes=100)
    result = fewshot.evaluate(model, bench)
    # Measured: 52.8% ± 0.7 over 600 episodes at this seed, 50-61% over 100 episodes at other seeds; chance 20%.
    assert result.mean > 0.40
    assert result.episodes == 100 and result.accuracies.shape == (100,) and result.run_id is None
    assert result.mean == pytest.approx(result.accuracies.mean())
    assert result.ci95 == pytest.approx(mean_interval(result.accuracies))
    assert model.training, "the model is left in the mode it had"
    again = fewshot.evaluate(model, bench)
    assert np.array_equal(again.accuracies, result.accuracies) and again.digest == result.digest
    assert fewshot.evaluate(model, bench, episodes=10).accuracies.tolist() == result.accuracies[:10].tolist()


def test_nearest_centroid_is_negative_squared_distance_to_the_class_means():
    bench = fewshot.benchmark("glyphs", ways=3, shots=2, queries=1, episodes=1)
    episode = bench[0].map_inputs(lambda x: x.flatten(1))
    learner = fewshot.api.NearestCentroid(bench.task, {}, torch.nn.Flatten())
    logits = learner.predict_embedded(episode)
    for q in range(3):
        for c in range(3):
            mean = episode.support_x[2 * c : 2 * c + 2].mean(0)
            assert logits[q, c].item() == pytest.approx(-((episode.query_x[q] - mean) ** 2).sum().item(), rel=1e-4)
    with pytest.raises(FewshotError, match=r"must map images .* to features \[3, D\]; it returned \(2352,\)"):
        fewshot.api.NearestCentroid(bench.task, {}, torch.nn.Flatten(0)).embed(bench[0].query_x)


def test_a_recorded_run_is_in_the_results_file(tmp_path):
    path = tmp_path / "results.sqlite"
    bench = fewshot.benchmark("glyphs", ways=5, shots=5, episodes=30, seed=2)
    result = fewshot.evaluate(torch.nn.Flatten(), bench, record=path, name="pixels", hparams={"metric": "euclidean"})
    run = ResultsStore(path).run(result.run_id)
    assert np.array_equal(run["accuracies"], result.accuracies)
    assert {
        k: run[k]
        for k in (
            "learner",
            "dataset",
            "protocol",
            "split",
            "ways",
            "shots",
            "queries",
            "episodes",
            "seed",
            "episodes_digest",
        )
    } == {
        "learner": "pixels",
        "dataset": "glyphs",
        "protocol": "scripts",
        "split": "test",
        "ways": 5,
        "shots": 5,
        "queries": 15,
        "episodes": 30,
        "seed": 2,
        "episodes_digest": result.digest,
    }
    assert (run["mean"], run["ci95"]) == (result.mean, result.ci95)
    assert run["train_steps"] is None and run["train_budget"] is None and run["checkpoint"] is None
    assert json.loads(run["hparams"]) == {"metric": "euclidean"}
    assert json.loads(run["extra"])["recorded_by"] == "fewshot.evaluate"
    board = run_cli("leaderboard", "--results", str(path))
    assert board.returncode == 0, board.stderr
    assert "pixels" in board.stdout


def test_the_api_scores_a_trained_learner_as_fewshot_eval_does(glyphs):
    cell = experiment.resolve_cell(glyphs, 5, 1, None, 40, 0)
    setup = experiment.make_setup("protonet", {"train_ways": "10", "hidden": "16"}, glyphs, cell)
    trained = experiment.ensure_trained(setup, training.Budget(steps=5), torch.device("cpu"), progress=False)
    cli = evaluation.evaluate(trained.learner, experiment.test_source(glyphs, setup.cell), cell.episodes)
    api = fewshot.evaluate(trained.learner, fewshot.benchmark("glyphs", ways=5, shots=1, episodes=40))
    assert np.array_equal(api.accuracies, cli.accuracies)
    assert (api.mean, api.ci95, api.digest) == (cli.mean, cli.ci95, cli.digest)


class NotebookMean(fewshot.Learner):
    """A learner defined where it is used (as in a notebook): nearest class mean on a trained Conv-4."""

    hparams: ClassVar[dict[str, float]] = {"lr": 1e-3}

    def __init__(self, task, hp):
        super().__init__(task, hp)
        self.backbone = Conv4(task.image_shape[0], 16)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=hp["lr"])

    def train_batches(self):
        return fewshot.EpisodeBatches(ways=5, shots=self.task.shots, queries=3)

    def train_step(self, batch):
        self.optimizer.zero_grad()
        episode = batch[0]
        loss = F.cross_entropy(self.predict_embedded(episode.map_inputs(self.backbone)), episode.query_y)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def embed(self, x):
        return self.backbone(x)

    def predict_embedded(self, episode):
        means = episode.support_x.view(episode.ways, -1, episode.support_x.shape[-1]).mean(1)
        return -torch.cdist(episode.query_x, means)


def test_a_registered_learner_is_found_trained_and_scored_like_an_installed_one(glyphs, registered):
    assert fewshot.register_learner(NotebookMean, "notebook-mean") is NotebookMean
    registered.append("notebook-mean")
    assert "notebook-mean" in registry.names("learner") and registry.learner("notebook-mean") is NotebookMean
    cell = experiment.resolve_cell(glyphs, 5, 1, None, 20, 0)
    setup = experiment.make_setup("notebook-mean", {"lr": "0.01"}, glyphs, cell)
    assert setup.cls is NotebookMean and setup.hp == {"lr": 0.01}
    trained = experiment.ensure_trained(setup, training.Budget(steps=4), torch.device("cpu"), progress=False)
    assert trained.steps == 4 and trained.checkpoint.exists()
    result = fewshot.evaluate(trained.learner, fewshot.benchmark("glyphs", ways=5, shots=1, episodes=20))
    assert result.mean > 0.2

    @fewshot.register_learner
    class Decorated(NotebookMean):
        pass

    registered.append("decorated")
    assert registry.learner("decorated") is Decorated
    fewshot.register_learner(name="decorated-too")(Decorated)
    registered.append("decorated-too")
    assert registry.learner("decorated-too") is Decorated


def test_registration_refuses_taken_names_and_non_learners(registered):
    fewshot.register_learner(NotebookMean, "notebook-mean")
    registered.append("notebook-mean")
    for taken in ("notebook-mean", "protonet"):
        with pytest.raises(FewshotError, match=f"already registered as '{taken}'.*taken: .*notebook-mean.*protonet"):
            fewshot.register_learner(NotebookMean, taken)
    assert registry.learner("protonet").__name__ == "ProtoNet"
    with pytest.raises(TypeError, match=r"subclass of fewshot.Learner"):
        fewshot.register_learner(torch.nn.Linear)
    with pytest.raises(TypeError, match=r"subclass of fewshot.Learner"):
        fewshot.register_learner(
            NotebookMean(fewshot.benchmark("glyphs", ways=5, shots=1, episodes=1).task, NotebookMean.hparams)
        )
    with pytest.raises(FewshotError, match="learner name 'two words'"):
        fewshot.register_learner(NotebookMean, "two words")
    fewshot.unregister_learner("notebook-mean")
    assert "notebook-mean" not in registry.names("learner")
    with pytest.raises(FewshotError, match="no learner 'notebook-mean' was registered in this process"):
        fewshot.unregister_learner("notebook-mean")
    with pytest.raises(FewshotError, match="no learner 'protonet' was registered in this process"):
        fewshot.unregister_learner("protonet")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"dataset": "nope"}, "unknown dataset 'nope': known datasets are"),
        ({"ways": 0}, "--ways must be at least 1, got 0"),
        ({"shots": 0}, "shots must be at least 1, got 0"),
        ({"queries": 0}, "--queries must be at least 1, got 0"),
        ({"episodes": 0}, "--episodes must be at least 1, got 0"),
        ({"split": "dev"}, "split='dev': choose one of train, val, test"),
        ({"protocol": "zsl"}, "glyphs/zsl is a zero-shot protocol"),
        ({"ways": 1000}, "has 542 classes, fewer than --ways 1000"),
        ({"source": "sans"}, "needs both --source and --target"),
        # values checked where they enter (issue 21, item 3): whole numbers only, seeds up to 2**63-1
        ({"ways": 5.5}, "ways=5.5: expected a whole number"),
        ({"shots": "1"}, "shots='1': expected a whole number"),
        ({"queries": float("nan")}, "queries=nan: expected a whole number"),
        ({"episodes": True}, "episodes=True: expected a whole number"),
        ({"seed": 1.0}, "seed=1.0: expected a whole number"),
        ({"seed": 2**63}, r"--seed must be between 0 and 9223372036854775807 \(2\*\*63-1\), got 9223372036854775808"),
    ],
)
def test_bad_arguments_are_one_line_errors(arguments, message):
    with pytest.raises(FewshotError, match=message) as caught:
        fewshot.benchmark(**{"dataset": "glyphs", "ways": 5, "shots": 1, **arguments})
    assert "\n" not in str(caught.value)


def test_a_63_bit_seed_gives_the_same_episodes_each_time():
    seed = 2**63 - 1
    first, again = (fewshot.benchmark("glyphs", ways=5, shots=1, episodes=3, seed=seed) for _ in range(2))
    assert first.seed == seed and all(same_episode(a, b) for a, b in zip(first, again))
    assert not same_episode(first[0], fewshot.benchmark("glyphs", ways=5, shots=1, episodes=3)[0])
    val = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=3, seed=seed, split="val")
    assert same_episode(val[2], fewshot.benchmark("glyphs", ways=5, shots=1, episodes=3, seed=seed, split="val")[2])


@pytest.mark.parametrize("split", ["test", "train"])
def test_a_cell_that_cannot_fit_in_memory_is_refused_before_any_work(monkeypatch, split):
    import fewshot.core.protocol

    monkeypatch.setattr(fewshot.core.protocol, "available_memory", lambda: 50 * 2**20)  # 50 MiB free
    with pytest.raises(FewshotError) as caught:
        fewshot.benchmark("glyphs", ways=20, shots=5, queries=15, episodes=100_000, split=split)
    assert str(caught.value) == (
        "100,000 episodes of 20 ways x 20 images need about 370 MiB, more than the 50 MiB free: "
        "lower --episodes, --ways, --shots or --queries"
    )
    assert len(fewshot.benchmark("glyphs", ways=20, shots=5, queries=15, episodes=1000, split=split)) == 1000


def test_evaluate_refuses_what_it_cannot_score(tmp_path):
    bench = fewshot.benchmark("glyphs", ways=5, shots=1, episodes=10)
    with pytest.raises(FewshotError, match=r"episodes=2\.5: expected a whole number"):
        fewshot.evaluate(torch.nn.Flatten(), bench, episodes=2.5)
    with pytest.raises(FewshotError, match="episodes=11: the set has 10; choose 1 to 10"):
        fewshot.evaluate(torch.nn.Flatten(), bench, episodes=11)
    with pytest.raises(TypeError, match=r"a fewshot Learner or a torch.nn.Module, not a function"):
        fewshot.evaluate(lambda x: x, bench)
    with pytest.raises(TypeError, match=r"episodes of fewshot.benchmark\(...\), not a list"):
        fewshot.evaluate(torch.nn.Flatten(), list(bench))
    with pytest.raises(FewshotError, match="cannot write results"):
        fewshot.evaluate(torch.nn.Flatten(), bench, record=tmp_path)  # a folder, not a file

    class ReadsDescriptions(NotebookMean):
        reads_sides = ("attributes",)

    with pytest.raises(FewshotError, match=r"reads class descriptions .*: evaluate it with `fewshot eval`"):
        fewshot.evaluate(ReadsDescriptions(bench.task, NotebookMean.hparams), bench)


def test_readme_api_examples(registered):
    """The module docstring's examples (the README's "Python API" section) run as written."""
    registered.extend(["pixelmean", "my-pixels"])
    outcome = doctest.testmod(fewshot.api, raise_on_error=False, verbose=False)
    assert outcome.attempted > 30 and outcome.failed == 0


def test_import_fewshot_stays_light():
    code = (
        "import sys, fewshot; heavy = [m for m in ('torch', 'click', 'matplotlib', 'fewshot.cli') if m in sys.modules];"
        "print(heavy, fewshot.benchmark.__module__, 'evaluate' in dir(fewshot), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "fewshot.api", "True", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        fewshot.nope  # noqa: B018
